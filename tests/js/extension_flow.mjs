// The real SillyTavern-NewAge extension's start-up and login, step for step
// (docs/protocol.md §4), with the official socket.io-client v4.
// Usage: node extension_flow.mjs <url> <polling|websocket> <clientId>
// Prints one JSON object with what each step observed; exits 1 on failure.
import { io } from "socket.io-client";

const [url, mode, clientId] = process.argv.slice(2);
const transports = mode === "websocket" ? ["websocket"] : ["polling", "websocket"];
const base = { clientType: "SillyTavern", clientId, desc: "这是一个SillyTaven扩展" };
const out = { steps: {} };
const sockets = [];

function open(nsp, auth) {
  const socket = io(url + nsp, { auth, transports, reconnection: false, forceNew: true });
  sockets.push(socket);
  return new Promise((resolve, reject) => {
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (err) => reject(new Error(`${nsp}: ${err.message}`)));
  });
}

function ack(socket, event, ...args) {
  return socket.timeout(5000).emitWithAck(event, ...args);
}

async function upgraded(socket) {
  if (mode === "websocket") return socket.io.engine.transport.name;
  const engine = socket.io.engine;
  if (engine.transport.name === "websocket") return "websocket";
  await new Promise((resolve) => engine.once("upgrade", resolve));
  return engine.transport.name;
}

try {
  // 1-2: key-less remember-me read on /function_call (docs/protocol.md §4)
  const check = await open("/function_call", base);
  out.steps.checkRememberMe = await ack(check, "FUNCTION_CALL", {
    requestId: "checkRememberMe", target: "server", functionName: "readJsonFromFile",
    args: [`./settings/${clientId}-settings.json`],
  });
  out.steps.bootstrapOther = await ack(check, "GET_CLIENT_LIST", {}).catch((e) => ({ error: String(e) }));
  // 3: the parallel networkSafe read on a second key-less socket
  const safe = await open("/function_call", base);
  out.steps.loadNetworkSafe = await ack(safe, "FUNCTION_CALL", {
    requestId: "loadNetworkSafeSetting", target: "server", functionName: "readJsonFromFile",
    args: ["./settings/server_settings.json"],
  });
  check.disconnect();
  safe.disconnect();

  // 4-7: key issuance on /sillytavern
  const desc = "本客户端是扩展端，运行于 8000 端口";
  const st = await open("/sillytavern", { ...base, desc, key: "getKey" });
  out.steps.identify = await ack(st, "IDENTIFY_SILLYTAVERN", { clientId });
  st.disconnect();
  const key = out.steps.identify.key;

  // 8-9: the real namespaces with the key
  const auth = { ...base, desc, key };
  const llm = await open("/llm", auth);
  const authSock = await open("/auth", auth);
  const fc = await open("/function_call", auth);
  const clients = await open("/clients", auth);
  const roomsSock = await open("/clients", auth); // the extension's mislabelled "rooms" socket
  out.transport = await upgraded(llm);

  // 10: key list and client list on /clients
  out.steps.allKeys = await ack(clients, "GET_ALL_CLIENT_KEYS", {});
  out.steps.connectedClients = await ack(clients, "UPDATE_CONNECTED_CLIENTS", {});
  out.steps.rooms = await ack(roomsSock, "GET_ROOMS", {});
  // 11: the settings read with the key
  out.steps.loadSettings = await ack(fc, "FUNCTION_CALL", {
    requestId: "loadSettings", target: "server", functionName: "readJsonFromFile",
    args: [`./settings/${clientId}-settings.json`],
  });
  out.steps.extensions = await ack(authSock, "GET_SILLYTAVERN_EXTENSION");
  // 12: the settings form's save, then the key buttons
  out.steps.saveSettings = await ack(fc, "FUNCTION_CALL", {
    requestId: "saveSettings", target: "server", functionName: "saveJsonToFile",
    args: ["./settings/server_settings.json", {
      serverPort: "4000", serverAddress: "http://localhost", networkSafe: true,
      reconnectAttempts: 10, reconnectDelay: 1000, timeout: 5000, autoConnect: true,
      socketIOPath: "/socket.io", queryParameters: {}, transport: "websocket",
    }],
  });
  out.steps.generateOther = await ack(clients, "GENERATE_CLIENT_KEY", { clientId, targetClientId: "web-app" });
  out.steps.removeOther = await ack(clients, "REMOVE_CLIENT_KEY", { clientId, targetClientId: "web-app" });
  out.steps.generate = await ack(clients, "GENERATE_CLIENT_KEY", { clientId, targetClientId: clientId });

  // a page reload: a new identification while the old /llm socket is still up
  const st2 = await open("/sillytavern", { ...base, desc, key: "getKey" });
  out.steps.reloadIdentify = await ack(st2, "IDENTIFY_SILLYTAVERN", { clientId });
  st2.disconnect();
  const llm2 = await open("/llm", { ...auth, key: out.steps.reloadIdentify.key });
  out.steps.reloadConnected = llm2.connected;
  // one round trip on the old socket: a kick sent when llm2 came would be in by its ack
  out.steps.oldAck = await ack(llm, "UNKNOWN_EVENT", {}).catch((e) => ({ error: String(e) }));
  out.steps.oldStillConnected = llm.connected;
  // the first tab's key still opens a namespace after the reload's getKey
  const again = await open("/llm", auth).then((s) => s.connected, (e) => String(e));
  out.steps.firstKeyStillWorks = again;
  out.ok = true;
} catch (err) {
  out.ok = false;
  out.error = String(err && err.stack || err);
} finally {
  for (const s of sockets) s.disconnect();
  console.log(JSON.stringify(out));
  process.exit(out.ok ? 0 : 1);
}
