// The little of Node's API that station_client.ts uses (no @types/node).
declare const process: {
  env: Record<string, string | undefined>;
  exitCode?: number;
};

declare module "node:module" {
  export function createRequire(path: string): (id: string) => unknown;
}
