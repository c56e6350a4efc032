// Voice on the page: what the daemon offers (GET /api/voice), replies spoken aloud, and the
// microphone that turns speech into text for the message box.
//
// Speech plays through the Web Audio API: the bytes are fetched with the API key (an <audio src>
// could not send it) and decoded in the page, so no media URL is loaded at all (the page's
// Content-Security-Policy has no media-src, which would block an <audio> of a blob: URL).

import { api } from "./api.js";
import { el, toast } from "./ui.js";

const SPEAK_REPLIES = "companion.speakReplies";

let offered = null;   // the last answer of /api/voice; null: unknown or it failed

/** Ask the daemon what voice it has ({speak, listen, limits}); null when it cannot say. */
export async function loadVoice() {
  try {
    offered = await api.get("/api/voice");
  } catch {
    offered = null;
  }
  return offered;
}

/** Replies can be spoken: the daemon has text-to-speech and this browser has Web Audio. */
export function canSpeak() {
  return Boolean(offered?.speak?.available) && "AudioContext" in window;
}

/** The microphone can be used: the daemon has speech-to-text and the browser can record
 * (a page served over plain http from another machine gets no microphone). */
export function canListen() {
  return Boolean(offered?.listen?.available) && Boolean(navigator.mediaDevices?.getUserMedia) && "MediaRecorder" in window;
}

export function voiceOffered() {
  return offered;
}

/** "Speak replies", remembered on this device. */
export function speakReplies() {
  return localStorage.getItem(SPEAK_REPLIES) === "1";
}

export function setSpeakReplies(on) {
  if (on) localStorage.setItem(SPEAK_REPLIES, "1");
  else localStorage.removeItem(SPEAK_REPLIES);
}

// --- playing ----------------------------------------------------------------------------------

const player = {
  context: null,
  root: null,            // the element that counts what was played (data-audio-queued, -played)
  sources: new Set(),    // the scheduled pieces of audio, each starting where the one before ends
  endsAt: 0,             // when the last scheduled piece ends, in the context's time
  chain: Promise.resolve(),   // decoding, in the order the pieces came
  generation: 0,         // bumped by stop(): what was on its way is dropped
  message: null,         // {id, state: "loading" | "playing"}: a message's speaker button
  warned: -1,            // the generation that showed a playback error already
};

function audioContext() {
  if (!player.context) player.context = new AudioContext();
  if (player.context.state === "suspended") player.context.resume().catch(() => {});
  return player.context;
}

/** Call in a click or key handler: a browser lets audio start only after the person did something. */
export function unlockAudio() {
  if ("AudioContext" in window) audioContext();
}

/** Where the page shows that it plays: data-speaking while it does; data-audio-queued and
 * data-audio-played count the pieces queued and played to their end. */
export function playerRoot(element) {
  player.root = element;
  showPlaying();
}

function bump(name) {
  if (player.root) player.root.dataset[name] = String(Number(player.root.dataset[name] || 0) + 1);
}

function showPlaying() {
  if (player.root) player.root.toggleAttribute("data-speaking", player.sources.size > 0);
  for (const button of document.querySelectorAll("button.speak-message")) showButton(button);
}

/** Stop what plays and drop what waits. */
export function stopPlayback() {
  player.generation += 1;
  player.chain = Promise.resolve();
  player.message = null;
  for (const source of [...player.sources]) {
    source.stopped = true;
    try { source.stop(); } catch { /* not started */ }
  }
  player.sources.clear();
  player.endsAt = 0;
  showPlaying();
}

function playbackFailed(err) {
  if (player.warned === player.generation) return;
  player.warned = player.generation;
  toast(`Could not play the speech: ${err.message || err}`, "error");
}

/** Queue encoded audio (WAV) to play after what is queued; resolves when it is scheduled. */
function enqueue(bytes, onStart) {
  const generation = player.generation;
  bump("audioQueued");
  player.chain = player.chain.then(async () => {
    if (generation !== player.generation) return;
    const context = audioContext();
    const buffer = await context.decodeAudioData(bytes);
    if (generation !== player.generation) return;
    const source = context.createBufferSource();
    source.buffer = buffer;
    source.connect(context.destination);
    const startAt = Math.max(context.currentTime + 0.02, player.endsAt);
    player.endsAt = startAt + buffer.duration;
    source.addEventListener("ended", () => {
      source.disconnect();
      if (source.stopped) return;
      player.sources.delete(source);
      bump("audioPlayed");
      if (!player.sources.size && generation === player.generation) {
        player.message = null;
        player.endsAt = 0;
      }
      showPlaying();
    });
    player.sources.add(source);
    source.start(startAt);
    if (onStart) onStart();
    showPlaying();
  }).catch((err) => {
    if (generation === player.generation) playbackFailed(err);
  });
  return player.chain;
}

/** An audio event of a spoken reply ({index, text, format, audio: base64}): played after the ones before. */
export function queueSpeech(event) {
  const bytes = Uint8Array.from(atob(event.audio), (c) => c.charCodeAt(0));
  enqueue(bytes.buffer);
}

// --- a message's speaker button -----------------------------------------------------------------

/** The speaker button of a stored message: speaks it; pressed again while it plays, stops. */
export function speakButton(messageId) {
  const button = el("button", { type: "button", class: "speak-message", dataset: { message: messageId },
    onclick: () => toggleMessage(messageId) });
  showButton(button);
  return button;
}

function showButton(button) {
  const mine = player.message && String(player.message.id) === button.dataset.message ? player.message.state : null;
  button.toggleAttribute("data-playing", mine === "playing");
  button.setAttribute("aria-pressed", String(Boolean(mine)));
  if (mine === "loading") button.setAttribute("aria-busy", "true");
  else button.removeAttribute("aria-busy");
  button.textContent = mine ? "Stop" : "Speak";
  button.setAttribute("aria-label", mine ? "Stop speaking" : "Speak this message");
}

async function toggleMessage(id) {
  const playing = player.message && player.message.id === id;
  stopPlayback();
  if (playing) return;
  unlockAudio();
  const generation = player.generation;
  player.message = { id, state: "loading" };
  showPlaying();
  try {
    const blob = await api.blob(`/api/messages/${id}/speech?format=wav`);
    if (generation !== player.generation) return;
    await enqueue(await blob.arrayBuffer(), () => {
      if (generation === player.generation) player.message = { id, state: "playing" };
    });
  } catch (err) {
    if (generation !== player.generation) return;
    player.message = null;
    showPlaying();
    toast(err.message || String(err), "error");
  }
}

// --- the microphone -------------------------------------------------------------------------------

const TYPES = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm", "audio/mp4"];
const recording = { button: null, recorder: null, stream: null, chunks: [], timer: 0, cancelled: false };

/** The microphone button: click to record, click again to stop; the transcript is added to
 * the message box (not sent), for the person to read and change first. */
export function micButton(prompt) {
  const button = el("button", { type: "button", class: "mic", onclick: () => (recording.recorder ? stopRecording() : startRecording(button, prompt)) });
  showMic(button, "idle");
  return button;
}

function showMic(button, state) {
  button.dataset.state = state;
  button.classList.toggle("recording", state === "recording");
  button.setAttribute("aria-pressed", String(state === "recording"));
  button.disabled = state === "starting" || state === "transcribing";
  if (state === "transcribing") button.setAttribute("aria-busy", "true");
  else button.removeAttribute("aria-busy");
  const [text, label] = {
    idle: ["", "Speak a message: click to start recording, click again to stop"],
    starting: ["", "Starting the microphone…"],
    recording: ["Stop", "Recording: click to stop and turn it into text"],
    transcribing: ["…", "Turning the recording into text…"],
  }[state];
  button.textContent = text;     // beside the microphone drawn by app.css
  button.setAttribute("aria-label", label);
  button.title = label;
}

async function startRecording(button, prompt) {
  const limits = offered?.limits || {};
  showMic(button, "starting");
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (err) {
    showMic(button, "idle");
    toast(err.name === "NotAllowedError" ? "The microphone is not allowed for this page (see the browser's site settings)."
      : `No microphone: ${err.message || err.name}`, "error");
    return;
  }
  if (!button.isConnected) {        // the chat was left meanwhile
    for (const track of stream.getTracks()) track.stop();
    return;
  }
  const type = TYPES.find((t) => MediaRecorder.isTypeSupported(t));
  const recorder = new MediaRecorder(stream, type ? { mimeType: type } : {});
  Object.assign(recording, { button, recorder, stream, chunks: [], cancelled: false });
  recorder.addEventListener("dataavailable", (e) => { if (e.data.size) recording.chunks.push(e.data); });
  recorder.addEventListener("stop", () => transcribe(button, prompt, recorder, limits));
  recorder.start(1000);
  showMic(button, "recording");
  const seconds = Number(limits.max_audio_seconds) || 300;
  recording.timer = setTimeout(() => {
    toast(`Recording stopped after ${seconds} seconds`);
    stopRecording();
  }, seconds * 1000);
}

function stopRecording() {
  clearTimeout(recording.timer);
  if (recording.recorder && recording.recorder.state !== "inactive") recording.recorder.stop();
  for (const track of recording.stream?.getTracks() || []) track.stop();
}

/** Stop recording and throw it away (the chat was left). */
export function cancelRecording() {
  if (!recording.recorder) return;
  recording.cancelled = true;
  stopRecording();
}

async function transcribe(button, prompt, recorder, limits) {
  const chunks = recording.chunks;
  const cancelled = recording.cancelled;
  Object.assign(recording, { button: null, recorder: null, stream: null, chunks: [], cancelled: false });
  if (cancelled || !button.isConnected) return;
  const type = (recorder.mimeType || chunks[0]?.type || "audio/webm").split(";")[0];
  const blob = new Blob(chunks, { type });
  if (!blob.size) {
    showMic(button, "idle");
    toast("Nothing was recorded", "error");
    return;
  }
  const maxBytes = (Number(limits.max_upload_mb) || 16) * 1024 * 1024;
  if (blob.size > maxBytes) {
    showMic(button, "idle");
    toast(`The recording is larger than ${limits.max_upload_mb || 16} MB; record a shorter message`, "error");
    return;
  }
  showMic(button, "transcribing");
  const extension = { "audio/ogg": "ogg", "audio/mp4": "m4a", "audio/wav": "wav" }[type] || "webm";
  try {
    const result = await api.upload("POST", "/v1/audio/transcriptions", new File([blob], `speech.${extension}`, { type }),
      { response_format: "json" });
    const text = (result?.text || "").trim();
    if (!text) toast("No words were heard in the recording");
    else if (prompt.isConnected) addToPrompt(prompt, text);
  } catch (err) {
    toast(err.message || String(err), "error");
  } finally {
    showMic(button, "idle");
  }
}

function addToPrompt(prompt, text) {
  const before = prompt.value;
  prompt.value = before + (before && !/\s$/.test(before) ? " " : "") + text;
  prompt.focus();
  prompt.setSelectionRange(prompt.value.length, prompt.value.length);
  prompt.dispatchEvent(new Event("input", { bubbles: true }));
}

/** Leaving the chat: nothing goes on speaking or recording. */
export function stopVoice() {
  stopPlayback();
  cancelRecording();
}
