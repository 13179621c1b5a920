// The transcript of one realtime session, built from the server's events.
//
// Items (utterances) keep the order the server first named them in. Each shows its
// latest partial hypothesis until `completed` makes its text final; a `failed` item
// is done without text. Pure: events in, text out; recorder.js renders it.

export class Transcript {
  constructor() {
    this.items = new Map(); // item_id → {partial, final, done}
  }

  _item(id) {
    let item = this.items.get(id);
    if (!item) {
      item = { partial: "", final: "", done: false };
      this.items.set(id, item);
    }
    return item;
  }

  // Apply one server event; true when the shown text may have changed.
  apply(event) {
    const id = event.item_id;
    switch (event.type) {
      case "input_audio_buffer.speech_started":
      case "input_audio_buffer.committed":
        if (id) this._item(id);
        return false;
      case "conversation.item.input_audio_transcription.delta": {
        const item = this._item(id);
        if (item.done) return false; // a late partial never overwrites the final text
        // partial_transcript is the whole hypothesis (it may revise earlier words);
        // a server without it sends only appends.
        item.partial =
          typeof event.partial_transcript === "string"
            ? event.partial_transcript
            : item.partial + (event.delta || "");
        return true;
      }
      case "conversation.item.input_audio_transcription.completed": {
        const item = this._item(id);
        item.final = (event.transcript || "").trim();
        item.partial = "";
        item.done = true;
        return true;
      }
      case "conversation.item.input_audio_transcription.failed": {
        const item = this._item(id);
        item.partial = "";
        item.done = true;
        return true;
      }
      default:
        return false;
    }
  }

  // Final texts of completed items, in order.
  finals() {
    return [...this.items.values()].filter((i) => i.done && i.final).map((i) => i.final);
  }

  finalText() {
    return this.finals().join(" ");
  }

  // The hypotheses of items still being spoken or transcribed.
  partialText() {
    return [...this.items.values()]
      .filter((i) => !i.done && i.partial)
      .map((i) => i.partial.trim())
      .join(" ");
  }

  // Items the server knows of that have no final answer yet.
  pending() {
    return [...this.items.values()].filter((i) => !i.done).length;
  }

  // A finished upload's text, shown like a completed item.
  addFinal(text) {
    const id = `upload_${this.items.size + 1}`;
    this.items.set(id, { partial: "", final: text.trim(), done: true });
  }
}
