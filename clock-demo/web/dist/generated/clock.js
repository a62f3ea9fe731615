/** `IClockHub`'s methods, called on `connection`. */
export function createIClockHub(connection) {
    return {
        getTime() {
            return connection.invoke("GetTime");
        },
    };
}
/** Registers implementations of `IClock` on `connection`. */
export function createIClockReceiver(connection) {
    return {
        register(receiver) {
            const showTimeHandler = (now) => receiver.showTime(now);
            connection.on("ShowTime", showTimeHandler);
            return {
                dispose() {
                    connection.off("ShowTime", showTimeHandler);
                },
            };
        },
    };
}
