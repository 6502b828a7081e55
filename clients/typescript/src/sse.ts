/**
 * SSE frames from a response body. Parsing is eventsource-parser's: frames split across chunks,
 * multi-line data, CRLF and comments are its business, not ours.
 */
import { type EventSourceMessage, EventSourceParserStream } from "eventsource-parser/stream";

export type Frame = EventSourceMessage;

/**
 * Yields every complete frame in order. A frame cut off by the end of the body is dropped, as the
 * SSE standard says, so a cursor only ever advances past frames that arrived whole.
 */
export async function* readFrames(
  body: ReadableStream<Uint8Array>,
  onRetry: (milliseconds: number) => void,
): AsyncGenerator<Frame, void, undefined> {
  const reader = body
    // TextDecoderStream accepts any BufferSource; the DOM typings are only narrower than that.
    .pipeThrough(new TextDecoderStream() as ReadableWritablePair<string, Uint8Array>)
    .pipeThrough(new EventSourceParserStream({ onRetry }))
    .getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    // Leaving early (a final event, an abort) must release the connection, not leak it.
    await reader.cancel().catch(() => undefined);
  }
}
