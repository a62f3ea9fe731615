//! TypeScript from the Rust contract traits (feature `typescript`).
//!
//! `#[hub_server(typescript)]` and `#[hub_client(typescript)]` describe a
//! contract to this module ([`TypeScriptContract`], implemented by the
//! generated `IClockHubContract` / `IClockContract`); [`TypeScript`] turns
//! a set of contracts into one `.ts` module for the stock
//! `@microsoft/signalr` browser and Node client:
//!
//! - the argument and result types, from their [`ts_rs::TS`] impls, so they
//!   follow serde's attributes (`rename`, `rename_all`, `tag`, `Option`,
//!   maps, …) as `ts-rs` reads them; [`Timestamp`] is a
//!   `string` (RFC 3339, what the JSON protocol carries);
//! - per hub contract, an interface (`IClockHub`) and
//!   `createIClockHub(connection)`, the typed wrapper over the
//!   connection's `invoke` / `send` / `stream`;
//! - per client contract, an interface (`IClock`) that the page implements
//!   and `createIClockReceiver(connection)`, whose `register(receiver)`
//!   wires it to `connection.on(…)` and returns a `Disposable`.
//!
//! Opting in is per contract: only the traits marked `typescript` need
//! their types to implement `TS` (`#[derive(ts_rs::TS)]`; the contract
//! crate depends on `ts-rs` in the same major version as `hub-runtime`).
//!
//! Names in TypeScript: methods and parameters in camelCase
//! (`get_time` → `getTime`); the wire names are those of the Rust side.
//! 64-bit integers are `number` (what `JSON.parse` produces).
//!
//! ```
//! use hub_runtime::{Timestamp, hub_client, hub_server};
//!
//! #[hub_server(typescript)]
//! pub trait IClockHub {
//!     async fn get_time(&self) -> Timestamp;
//! }
//!
//! #[hub_client(typescript)]
//! pub trait IClock {
//!     async fn show_time(&self, now: Timestamp);
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let module = hub_runtime::typescript::TypeScript::new()
//!     .contract::<IClockHubContract>()
//!     .contract::<IClockContract>()
//!     .render()?;
//! assert!(module.contains("getTime"));
//! // std::fs::write("web/src/generated/clock.ts", module)?;
//! # Ok(())
//! # }
//! ```

use std::any::TypeId;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

pub use ts_rs;
use ts_rs::{Config, TS, TypeVisitor};

use crate::Timestamp;

/// A contract a TypeScript module can be generated from: implemented by
/// `#[hub_server(typescript)]` and `#[hub_client(typescript)]` on the
/// generated `…Contract` type.
pub trait TypeScriptContract {
    /// The contract's methods and types.
    fn typescript() -> TsContract;
}

/// Which side implements a contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// A hub's methods (`#[hub_server]`): the TypeScript client calls them.
    Hub,
    /// A client's methods (`#[hub_client]`): the hub calls them, the
    /// TypeScript client implements them.
    Client,
}

/// How a method is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsMethodKind {
    /// Awaits a result (`invoke`; for a client method, a client result).
    Invoke,
    /// Fire-and-forget (`send`; for a client method, one without a result).
    Send,
    /// A stream of items (`stream`).
    Stream,
}

/// A contract, as the macros describe it.
#[derive(Debug)]
pub struct TsContract {
    /// The trait's name (`IClockHub`).
    pub name: &'static str,
    /// Which side implements it.
    pub side: Side,
    /// The trait's doc comment.
    pub docs: &'static str,
    /// The methods, in declaration order.
    pub methods: Vec<TsMethod>,
}

/// One method of a contract.
#[derive(Debug)]
pub struct TsMethod {
    /// The Rust name (`get_time`).
    pub rust_name: &'static str,
    /// The wire name (`GetTime`).
    pub wire_name: &'static str,
    /// The method's doc comment.
    pub docs: &'static str,
    /// Its parameters on the wire, in order (no `CallContext`).
    pub params: Vec<TsParam>,
    /// The result type (`Invoke`), the item type (`Stream`), or `None`.
    pub output: Option<TsType>,
    /// How it is called.
    pub kind: TsMethodKind,
}

/// One parameter.
#[derive(Debug)]
pub struct TsParam {
    /// The Rust name.
    pub rust_name: &'static str,
    /// Its type: the value's, or the items' for an upload stream.
    pub ty: TsType,
    /// Whether it is an upload stream (`UploadStream<T>`).
    pub upload: bool,
}

/// A Rust type seen from TypeScript: how to name it, and how to declare
/// the types it needs.
#[derive(Clone, Copy)]
pub struct TsType {
    rust_name: &'static str,
    name: fn(&Config) -> String,
    declare: fn(&mut Declarations<'_>),
}

impl fmt::Debug for TsType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TsType").field(&self.rust_name).finish()
    }
}

/// `T` as a [`TsType`].
pub fn ts_type<T: TS + 'static + ?Sized>() -> TsType {
    TsType {
        rust_name: std::any::type_name::<T>(),
        name: <T as TS>::name,
        declare: |declarations| {
            declarations.visit::<T>();
            <T as TS>::visit_generics(declarations);
            <T as TS>::visit_dependencies(declarations);
        },
    }
}

/// The declared types of a module, by TypeScript name.
pub struct Declarations<'a> {
    config: &'a Config,
    by_name: BTreeMap<String, (TypeId, &'static str, String)>,
    error: Option<TypeScriptError>,
}

impl TypeVisitor for Declarations<'_> {
    fn visit<T: TS + 'static + ?Sized>(&mut self) {
        // Primitives, `Vec`, `Option`, … have no declaration of their own.
        if <T as TS>::output_path().is_none() {
            <T as TS>::visit_generics(self);
            <T as TS>::visit_dependencies(self);
            return;
        }
        let name = <T as TS>::ident(self.config);
        let id = TypeId::of::<T::WithoutGenerics>();
        let rust_name = std::any::type_name::<T>();
        match self.by_name.get(&name) {
            Some((seen, _, _)) if *seen == id => return,
            Some((_, other, _)) => {
                self.error.get_or_insert(TypeScriptError(format!(
                    "two Rust types are named `{name}` in TypeScript: `{other}` and \
                     `{rust_name}`; rename one with `#[ts(rename = \"…\")]`"
                )));
                return;
            }
            None => {}
        }
        let mut text = String::new();
        if let Some(docs) = <T as TS>::docs() {
            text.push_str(&docs);
        }
        text.push_str("export ");
        text.push_str(&<T::WithoutGenerics as TS>::decl(self.config));
        self.by_name.insert(name, (id, rust_name, text));
        <T as TS>::visit_generics(self);
        <T as TS>::visit_dependencies(self);
    }
}

/// A module that cannot be generated: two types share a TypeScript name,
/// or two contracts share a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeScriptError(String);

impl fmt::Display for TypeScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TypeScriptError {}

/// A TypeScript module generated from contracts; see the
/// [module documentation](self).
#[derive(Debug, Default)]
pub struct TypeScript {
    contracts: Vec<TsContract>,
}

impl TypeScript {
    /// A module with no contract yet.
    pub fn new() -> Self {
        TypeScript::default()
    }

    /// Adds the contract `C` (`IClockHubContract`, `IClockContract`).
    #[must_use]
    pub fn contract<C: TypeScriptContract>(mut self) -> Self {
        self.contracts.push(C::typescript());
        self
    }

    /// The module's text.
    pub fn render(&self) -> Result<String, TypeScriptError> {
        let config = Config::new().with_large_int("number");
        let mut declarations = Declarations {
            config: &config,
            by_name: BTreeMap::new(),
            error: None,
        };
        let mut names = BTreeMap::new();
        for contract in &self.contracts {
            if names.insert(contract.name, contract.side).is_some() {
                return Err(TypeScriptError(format!(
                    "the contract `{}` is given twice",
                    contract.name
                )));
            }
            for method in &contract.methods {
                for param in &method.params {
                    (param.ty.declare)(&mut declarations);
                }
                if let Some(output) = &method.output {
                    (output.declare)(&mut declarations);
                }
            }
        }
        if let Some(error) = declarations.error {
            return Err(error);
        }
        for name in declarations.by_name.keys() {
            if names.contains_key(name.as_str()) {
                return Err(TypeScriptError(format!(
                    "`{name}` is both a contract and a type"
                )));
            }
        }

        let mut out = String::new();
        out.push_str(
            "// Generated by hub-runtime from the Rust contract traits. Do not edit:\n\
             // change the traits and generate again.\n\
             /* eslint-disable */\n",
        );
        let has_hub = self.contracts.iter().any(|c| c.side == Side::Hub);
        let has_client = self.contracts.iter().any(|c| c.side == Side::Client);
        let has_streams = self.contracts.iter().any(|c| {
            c.methods
                .iter()
                .any(|m| m.kind == TsMethodKind::Stream || m.params.iter().any(|p| p.upload))
        });
        let mut imports = vec!["HubConnection"];
        if has_streams {
            imports.push("IStreamResult");
        }
        if has_hub || has_client {
            let _ = writeln!(
                out,
                "import type {{ {} }} from \"@microsoft/signalr\";",
                imports.join(", ")
            );
        }
        for (_, _, text) in declarations.by_name.values() {
            out.push('\n');
            out.push_str(text);
            if !text.ends_with(';') {
                out.push(';');
            }
            out.push('\n');
        }
        if has_client {
            out.push_str(
                "\n/** Undoes a registration. */\n\
                 export interface Disposable {\n  dispose(): void;\n}\n\
                 \n/** Registers an implementation of a client contract on a connection. */\n\
                 export interface HubReceiver<T> {\n  \
                 /** Calls `receiver`'s methods when the hub calls them; undo with `dispose()`. */\n  \
                 register(receiver: T): Disposable;\n}\n",
            );
        }
        for contract in &self.contracts {
            match contract.side {
                Side::Hub => render_hub(&mut out, contract, &config),
                Side::Client => render_client(&mut out, contract, &config),
            }
        }
        Ok(out)
    }
}

/// `get_time` → `getTime`.
fn camel_case(rust_name: &str) -> String {
    let name = rust_name.strip_prefix("r#").unwrap_or(rust_name);
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = !out.is_empty();
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// A parameter name that is not a reserved word in TypeScript.
fn param_name(rust_name: &str) -> String {
    const RESERVED: &[&str] = &[
        "arguments",
        "break",
        "case",
        "catch",
        "class",
        "const",
        "continue",
        "debugger",
        "default",
        "delete",
        "do",
        "else",
        "enum",
        "eval",
        "export",
        "extends",
        "false",
        "finally",
        "for",
        "function",
        "if",
        "implements",
        "import",
        "in",
        "instanceof",
        "interface",
        "let",
        "new",
        "null",
        "package",
        "private",
        "protected",
        "public",
        "return",
        "static",
        "super",
        "switch",
        "this",
        "throw",
        "true",
        "try",
        "typeof",
        "var",
        "void",
        "while",
        "with",
        "yield",
        "connection",
    ];
    let name = camel_case(rust_name);
    if RESERVED.contains(&name.as_str()) {
        format!("{name}_")
    } else {
        name
    }
}

fn doc_comment(out: &mut String, indent: &str, docs: &str) {
    let lines: Vec<&str> = docs.lines().map(str::trim_end).collect();
    let first = lines.iter().position(|line| !line.trim().is_empty());
    let last = lines.iter().rposition(|line| !line.trim().is_empty());
    let (Some(first), Some(last)) = (first, last) else {
        return;
    };
    let _ = writeln!(out, "{indent}/**");
    for line in &lines[first..=last] {
        let line = line.strip_prefix(' ').unwrap_or(line).replace("*/", "*\\/");
        if line.is_empty() {
            let _ = writeln!(out, "{indent} *");
        } else {
            let _ = writeln!(out, "{indent} * {line}");
        }
    }
    let _ = writeln!(out, "{indent} */");
}

fn params(method: &TsMethod, config: &Config) -> String {
    method
        .params
        .iter()
        .map(|param| {
            let ty = (param.ty.name)(config);
            if param.upload {
                format!("{}: IStreamResult<{ty}>", param_name(param.rust_name))
            } else {
                format!("{}: {ty}", param_name(param.rust_name))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn output(method: &TsMethod, config: &Config) -> String {
    method
        .output
        .map_or_else(|| "void".to_owned(), |ty| (ty.name)(config))
}

fn render_hub(out: &mut String, contract: &TsContract, config: &Config) {
    let name = contract.name;
    out.push('\n');
    doc_comment(out, "", contract.docs);
    let _ = writeln!(out, "export interface {name} {{");
    let mut bodies = String::new();
    for method in &contract.methods {
        let ts_name = camel_case(method.rust_name);
        let params = params(method, config);
        let result = match method.kind {
            TsMethodKind::Invoke => format!("Promise<{}>", output(method, config)),
            TsMethodKind::Send => "Promise<void>".to_owned(),
            TsMethodKind::Stream => format!("IStreamResult<{}>", output(method, config)),
        };
        let mut docs = method.docs.trim_end().to_owned();
        let how = match method.kind {
            TsMethodKind::Invoke => "invoked",
            TsMethodKind::Send => "sent without waiting for the hub (fire-and-forget)",
            TsMethodKind::Stream => "streamed",
        };
        if !docs.is_empty() {
            docs.push_str("\n\n");
        }
        let _ = write!(docs, "Hub method `{}`, {how}.", method.wire_name);
        doc_comment(out, "  ", &docs);
        let _ = writeln!(out, "  {ts_name}({params}): {result};");

        let call = match method.kind {
            TsMethodKind::Invoke => format!("invoke<{}>", output(method, config)),
            TsMethodKind::Send => "send".to_owned(),
            TsMethodKind::Stream => format!("stream<{}>", output(method, config)),
        };
        let mut arguments = vec![format!("{:?}", method.wire_name)];
        arguments.extend(method.params.iter().map(|p| param_name(p.rust_name)));
        let _ = writeln!(
            bodies,
            "    {ts_name}({params}): {result} {{\n      \
             return connection.{call}({});\n    }},",
            arguments.join(", ")
        );
    }
    out.push_str("}\n\n");
    let _ = writeln!(
        out,
        "/** `{name}`'s methods, called on `connection`. */\n\
         export function create{name}(connection: HubConnection): {name} {{\n  \
         return {{\n{bodies}  }};\n}}"
    );
}

fn render_client(out: &mut String, contract: &TsContract, config: &Config) {
    let name = contract.name;
    out.push('\n');
    doc_comment(out, "", contract.docs);
    let _ = writeln!(out, "export interface {name} {{");
    let mut registrations = String::new();
    let mut removals = String::new();
    for method in &contract.methods {
        let ts_name = camel_case(method.rust_name);
        let params = params(method, config);
        let result = output(method, config);
        let mut docs = method.docs.trim_end().to_owned();
        if !docs.is_empty() {
            docs.push_str("\n\n");
        }
        let _ = match method.kind {
            TsMethodKind::Invoke => write!(
                docs,
                "Client method `{}`: the hub awaits the result.",
                method.wire_name
            ),
            _ => write!(docs, "Client method `{}`.", method.wire_name),
        };
        doc_comment(out, "  ", &docs);
        let _ = writeln!(out, "  {ts_name}({params}): {result} | Promise<{result}>;");
        let handler = format!("{ts_name}Handler");
        let arguments = method
            .params
            .iter()
            .map(|p| param_name(p.rust_name))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            registrations,
            "      const {handler} = ({params}): {result} | Promise<{result}> =>\n        \
             receiver.{ts_name}({arguments});\n      \
             connection.on({:?}, {handler});",
            method.wire_name
        );
        let _ = writeln!(
            removals,
            "          connection.off({:?}, {handler});",
            method.wire_name
        );
    }
    out.push_str("}\n\n");
    let _ = writeln!(
        out,
        "/** Registers implementations of `{name}` on `connection`. */\n\
         export function create{name}Receiver(connection: HubConnection): HubReceiver<{name}> {{\n  \
         return {{\n    register(receiver: {name}): Disposable {{\n{registrations}      \
         return {{\n        dispose(): void {{\n{removals}        }},\n      }};\n    }},\n  }};\n}}"
    );
}

/// An RFC 3339 string on the JSON wire (`"2024-01-01T00:00:00.123Z"`),
/// which `new Date(s)` parses.
impl TS for Timestamp {
    type WithoutGenerics = Self;
    type OptionInnerType = Self;

    fn name(_: &Config) -> String {
        "string".to_owned()
    }

    fn inline(config: &Config) -> String {
        Self::name(config)
    }
}

#[cfg(test)]
mod tests {
    use super::{camel_case, param_name};

    #[test]
    fn names() {
        assert_eq!(camel_case("get_time"), "getTime");
        assert_eq!(camel_case("r#type"), "type");
        assert_eq!(camel_case("show"), "show");
        assert_eq!(camel_case("get_v2_value"), "getV2Value");
        assert_eq!(param_name("new"), "new_");
        assert_eq!(param_name("connection"), "connection_");
        assert_eq!(param_name("max_items"), "maxItems");
    }
}
