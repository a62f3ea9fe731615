/** `IChatHub`'s methods, called on `connection`. */
export function createIChatHub(connection) {
    return {
        join(room) {
            return connection.invoke("Join", room);
        },
        leave(room) {
            return connection.invoke("Leave", room);
        },
        post(room, text) {
            return connection.invoke("Post", room, text);
        },
        whisper(user, text) {
            return connection.invoke("Whisper", user, text);
        },
        whoami() {
            return connection.invoke("Whoami");
        },
        announce(room, text) {
            return connection.invoke("Announce", room, text);
        },
    };
}
/** Registers implementations of `IChatClient` on `connection`. */
export function createIChatClientReceiver(connection) {
    return {
        register(receiver) {
            const messagePostedHandler = (message) => receiver.messagePosted(message);
            connection.on("MessagePosted", messagePostedHandler);
            const whisperedHandler = (message) => receiver.whispered(message);
            connection.on("Whispered", whisperedHandler);
            const joinedHandler = (room, user) => receiver.joined(room, user);
            connection.on("Joined", joinedHandler);
            return {
                dispose() {
                    connection.off("MessagePosted", messagePostedHandler);
                    connection.off("Whispered", whisperedHandler);
                    connection.off("Joined", joinedHandler);
                },
            };
        },
    };
}
