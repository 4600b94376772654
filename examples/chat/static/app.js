// The chat page: phoenix.js from the npm package, served by the C++ endpoint.
import { LongPoll, Presence, Socket } from "/phoenix.mjs";

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
  // or over long-poll in a header, not in the URL, so it stays out of access
  // logs. Where WebSockets are blocked, phoenix.js falls back to long-poll
  // after 2.5 s (?transport=longpoll: at once).
  const params = new URLSearchParams(location.search);
  const socket = new Socket("/socket", {
    authToken: token,
    longPollFallbackMs: 2500,
    ...(params.get("transport") === "longpoll" ? { transport: LongPoll } : {}),
  });
  socket.onOpen(() => status(`connected as ${user}`));
  socket.onClose(() => status("disconnected, reconnecting…"));
  socket.connect();

  // Missed messages are not lost: every new_msg carries its offset in the
  // room's history, and a rejoin (after a reconnect) sends the last one seen,
  // so the server pushes what was said meanwhile before anything new. The
  // params are a function: phoenix.js calls it on every (re)join.
  const seen = { offset: null, epoch: null };
  const channel = socket.channel("room:lobby", () =>
    seen.epoch === null ? {} : { offset: seen.offset, epoch: seen.epoch });
  // Who is online, and who is typing: the server tracks every joined user
  // with meta {online_at, typing} and sends presence_state / presence_diff.
  const presence = new Presence(channel);
  presence.onSync(() => {
    const people = presence.list((id, { metas }) =>
      metas.some((m) => m.typing) ? `${id} (typing…)` : id);
    $("online").textContent = people.join(", ") || "nobody";
  });
  channel.on("new_msg", ({ user_id, body, offset }) => {
    if (typeof offset === "number") seen.offset = offset;
    show(`${user_id}: ${body}`, "msg");
  });
  let typingTimer;
  channel.on("typing", ({ user_id }) => {
    $("typing").textContent = `${user_id} is typing…`;
    clearTimeout(typingTimer);
    typingTimer = setTimeout(() => { $("typing").textContent = ""; }, 2000);
  });
  let joinedOnce = false;
  channel.join()
    .receive("ok", (reply) => {
      // A first join starts from the room's current offset; a rejoin that
      // could not be recovered (history too short, or the server restarted)
      // says so, and starts again from there.
      if (reply.recovered === false) show("some messages were missed while offline", "error");
      if (!joinedOnce || reply.recovered === false) {
        seen.offset = reply.offset ?? null;
        seen.epoch = reply.epoch ?? null;
      }
      if (joinedOnce) return;
      joinedOnce = true;
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
