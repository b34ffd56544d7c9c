// For unit tests only: a scripted WebSocket, so a test decides when the handshake succeeds or fails, which
// frames arrive and when the connection drops. The real socket is driven by the browser tests in tests/e2e.
import type { SocketLike } from "@/api/ws";

const CONNECTING = 0;
const OPEN = 1;
const CLOSED = 3;

export class FakeSocket implements SocketLike {
  readyState = CONNECTING;
  onopen: ((event: Event) => void) | null = null;
  onclose: ((event: CloseEvent) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;
  onmessage: ((event: MessageEvent) => void) | null = null;
  /** Every message the page sent, parsed. */
  readonly sent: Record<string, unknown>[] = [];

  constructor(readonly url: string) {}

  send(data: string): void {
    if (this.readyState !== OPEN) throw new DOMException("not open", "InvalidStateError");
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
  }

  close(code = 1000): void {
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSED;
    this.onclose?.(new CloseEvent("close", { code }));
  }

  /** The handshake succeeds. */
  accept(): void {
    this.readyState = OPEN;
    this.onopen?.(new Event("open"));
  }

  /** The handshake fails (a refused route, a 401): the browser reports an error, then close code 1006. */
  refuse(): void {
    this.onerror?.(new Event("error"));
    this.readyState = CLOSED;
    this.onclose?.(new CloseEvent("close", { code: 1006 }));
  }

  /** The gateway sends one JSON frame. */
  push(frame: unknown): void {
    this.onmessage?.(new MessageEvent("message", { data: JSON.stringify(frame) }));
  }

  /** The connection is lost (gateway restart, proxy timeout). */
  drop(): void {
    this.refuse();
  }

  /** Job ids of the page's subscribe messages, in order. */
  subscribed(): string[] {
    return this.sent.filter((m) => m.type === "subscribe").flatMap((m) => m.job_ids as string[]);
  }
}

/** A factory for JobSocket's `open` option that keeps every socket it made, newest last. */
export function fakeSockets(): { open: (url: string) => FakeSocket; made: FakeSocket[]; at: (index: number) => FakeSocket } {
  const made: FakeSocket[] = [];
  return {
    made,
    at: (index) => {
      const socket = made.at(index);
      if (!socket) throw new Error(`no socket #${index} was opened (${made.length} were)`);
      return socket;
    },
    open: (url) => {
      const socket = new FakeSocket(url);
      made.push(socket);
      return socket;
    },
  };
}

/** A page WebSocket for tests whose gateway stub has no /api/v1/ws: every handshake fails right away. */
export class RefusedWebSocket extends FakeSocket {
  constructor(url: string) {
    super(url);
    queueMicrotask(() => this.refuse());
  }
}
