// Sends one HL7 v2 message with node-hl7-client over MLLP and prints the
// acknowledgement it receives (segments on lines of their own).
// Usage: node send.mjs <host> <port> <version> <message file> [<CA file>]
// With a CA file the connection uses TLS, verifying the server against it.
import fs from "node:fs";
import { Client, Message } from "node-hl7-client";

const [host, port, version, file, caFile] = process.argv.slice(2);
const text = fs.readFileSync(file, "utf8").replace(/\r?\n/g, "\r").replace(/\r+$/, "");
const opts = { host, version, maxConnectionAttempts: 3, connectionTimeout: 0 };
if (caFile) {
  opts.tls = { ca: fs.readFileSync(caFile), servername: "localhost" };
}
const client = new Client(opts);
const timer = setTimeout(() => {
  console.error("no acknowledgement within 20 s");
  process.exit(2);
}, 20000);
const conn = client.createConnection({ port: Number(port), waitAck: true }, async (res) => {
  clearTimeout(timer);
  console.log(res.getMessage().toString().split("\r").join("\n"));
  await conn.close();
  process.exit(0);
});
conn.on("client.error", (err) => {
  console.error("client error:", err);
  process.exit(3);
});
await conn.sendMessage(new Message({ text }));
