// Sends N events with npm @fluent-org/logger 1.0.10 (which implements the Forward handshake),
// used by logship's forward_peers test.
//
// usage: node send.js HOST PORT N MODE SHARED_KEY [USERNAME PASSWORD]
//   MODE: Message | Forward | PackedForward | CompressedPackedForward
// Tag is "node.<MODE>"; records carry "seq" 0..N-1; every event asks for an ack.
const { FluentClient } = require("@fluent-org/logger");

async function main() {
  const [host, port, n, mode, sharedKey, username, password] = process.argv.slice(2);
  const security = { clientHostname: "node-peer", sharedKey };
  if (username) {
    security.username = username;
    security.password = password;
  }
  const client = new FluentClient("node", {
    eventMode: mode,
    socket: { host, port: Number(port), timeout: 10000 },
    security,
    ack: { ackTimeout: 10000 },
    milliseconds: true,
  });
  const pending = [];
  for (let i = 0; i < Number(n); i++) {
    pending.push(client.emit(mode, { seq: i, msg: "event " + i }));
    if (pending.length >= 1000) {
      await Promise.all(pending.splice(0));
    }
  }
  await Promise.all(pending);
  await client.shutdown();
  console.log("sent " + n);
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error("node peer failed:", e);
    process.exit(1);
  },
);
