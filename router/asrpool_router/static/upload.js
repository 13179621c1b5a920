// Record mode's transcription: the recording, wrapped as a WAV file, posted to
// /v1/audio/transcriptions (the way users worked before the realtime endpoint).
// Stateless: one call per recording.

import { wavFile } from "./pcm.js";
import { UserError } from "./errors.js";

// pieces: the recording's PCM16 pieces (16 kHz); key: the API key ("" for none); language:
// "" to detect; base: the URL the endpoint is resolved against (the page's). Resolves to the
// text; rejects with a UserError carrying the server's own message where it gave one.
export async function transcribeRecording(pieces, { key, language, base }) {
  const form = new FormData();
  form.append("file", new Blob([wavFile(pieces)], { type: "audio/wav" }), "recording.wav");
  form.append("model", "whisper-1");
  form.append("response_format", "json");
  if (language) form.append("language", language);
  const headers = key ? { Authorization: `Bearer ${key}` } : {};
  let response;
  try {
    response = await fetch(new URL("v1/audio/transcriptions", base), {
      method: "POST",
      body: form,
      headers,
    });
  } catch (err) {
    throw new UserError(`Could not reach the server: ${err && err.message ? err.message : err}`);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: fall through to the status line
  }
  if (!response.ok) {
    const message = body && body.error && body.error.message;
    throw new UserError(message || `The server answered ${response.status} ${response.statusText}.`);
  }
  if (!body || typeof body.text !== "string") {
    throw new UserError("The server's answer had no text.");
  }
  return body.text;
}
