// The chat page: phoenix.js from the npm package, served by the C++ endpoint.
import { Presence, Socket } from "/phoenix.mjs";

const $ = (id) => document.getElementById(id);
const status = (text) => { $("status").textContent = text; };

function show(text, cls) {
  const p = document.createElement("p");
  p.textContent = text;
  if (cls) p.className = cls;
  $("messages").append(p);
  $("messages").scrollTop = $("messages").scrollHeight;
}

$("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  const user = $("user").value;
  const res = await fetch(`/token?user=${encodeURIComponent(user)}`);
  const { token, error } = await res.json();
  if (!token) return status(error);
  $("login").hidden = true;

  // The token travels in Sec-WebSocket-Protocol (phoenix.js 1.8 authToken),
  // not in the URL, so it stays out of access logs.
  const socket = new Socket("/socket", { authToken: token });
  socket.onOpen(() => status(`connected as ${user}`));
  socket.onClose(() => status("disconnected, reconnecting…"));
  socket.connect();

  const channel = socket.channel("room:lobby", {});
  // Who is online, and who is typing: the server tracks every joined user
  // with meta {online_at, typing} and sends presence_state / presence_diff.
  const presence = new Presence(channel);
  presence.onSync(() => {
    const people = presence.list((id, { metas }) =>
      metas.some((m) => m.typing) ? `${id} (typing…)` : id);
    $("online").textContent = people.join(", ") || "nobody";
  });
  channel.on("new_msg", ({ user_id, body }) => show(`${user_id}: ${body}`, "msg"));
  let typingTimer;
  channel.on("typing", ({ user_id }) => {
    $("typing").textContent = `${user_id} is typing…`;
    clearTimeout(typingTimer);
    typingTimer = setTimeout(() => { $("typing").textContent = ""; }, 2000);
  });
  channel.join()
    .receive("ok", () => {
      show(`joined room:lobby as ${user}`, "info");
      $("body").disabled = false;
      $("send").querySelector("button").disabled = false;
      $("body").focus();
    })
    .receive("error", (r) => show(`join failed: ${r.reason}`, "error"));

  let typingStop;
  $("body").addEventListener("input", () => {
    channel.push("typing", {});
    if (!typingStop) channel.push("typing:start", {});
    clearTimeout(typingStop);
    typingStop = setTimeout(() => { channel.push("typing:stop", {}); typingStop = null; }, 1500);
  });
  $("send").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const body = $("body").value;
    if (!body) return;
    channel.push("new_msg", { body })
      .receive("error", (r) => show(`not sent: ${r.reason}`, "error"));
    $("body").value = "";
  });
  window.plumeChat = { socket, channel, presence };
});
