// One WebSocket to the gateway (GET /api/v1/ws, gateway/live.py) shared by every job the page watches.
//
// The socket is opened when a watch first wants it and closed a while after the last watch ends. When it
// cannot open, or drops, each job that followed it is told so (its watch moves to SSE, see watch.ts) and the
// socket reconnects with exponential backoff for as long as some watch still wants it; when it is open again,
// the watches that fell back come back to it (`onOpen`). Browsers cannot set headers on a WebSocket, so the
// API key goes as the `api_key` query parameter the gateway accepts at the handshake.
import { getApiKey } from "@/lib/storage";

/** One event frame of a followed job: the same JSON body as that job's SSE `data` (gateway/events.py). */
export type JobFrame = Record<string, unknown> & { type: string; job_id: string };

/** What a follower hears: its job's frames, and once at most that the socket will carry no more of them. */
export interface FollowHandlers {
  frame(frame: JobFrame): void;
  /** The socket dropped, or the gateway refused to follow this job (`reason` says which). */
  lost(reason: string): void;
}

export type SocketState = "idle" | "connecting" | "open" | "backoff";

/** The part of the browser's WebSocket this module uses, so tests can give it a scripted one. */
export interface SocketLike {
  readonly readyState: number;
  onopen: ((event: Event) => void) | null;
  onclose: ((event: CloseEvent) => void) | null;
  onerror: ((event: Event) => void) | null;
  onmessage: ((event: MessageEvent) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type SocketFactory = (url: string) => SocketLike;

export interface JobSocketOptions {
  /** The URL to open, read at each connect (so a changed API key takes effect). */
  url?: () => string;
  open?: SocketFactory;
  /** First reconnect delay; it doubles per failed attempt up to `maxBackoffMs` (each drawn with jitter). */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** A handshake that neither opens nor fails by then (a proxy sitting on the upgrade) counts as failed. */
  openTimeoutMs?: number;
  /** How long an unused open socket stays, so consecutive jobs do not each pay for a handshake. */
  idleCloseMs?: number;
  random?: () => number;
}

const OPEN = 1;

/** `ws(s)://<this page's host>/api/v1/ws`, with the stored API key when there is one. */
export function jobSocketUrl(location: Pick<Location, "protocol" | "host"> = window.location, key = getApiKey()): string {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const query = key ? `?api_key=${encodeURIComponent(key)}` : "";
  return `${scheme}//${location.host}/api/v1/ws${query}`;
}

function isJobFrame(value: unknown): value is JobFrame {
  return typeof value === "object" && value !== null && typeof (value as JobFrame).type === "string" && typeof (value as JobFrame).job_id === "string";
}

function errorMessage(frame: Record<string, unknown>): string {
  const error = frame.error as { code?: unknown; message?: unknown } | undefined;
  return `${String(error?.code ?? "error")}: ${String(error?.message ?? "refused")}`;
}

export class JobSocket {
  private readonly url: () => string;
  private readonly open: SocketFactory;
  private readonly initialBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly openTimeoutMs: number;
  private readonly idleCloseMs: number;
  private readonly random: () => number;

  private socket: SocketLike | null = null;
  private socketUrl = "";
  private _state: SocketState = "idle";
  private failures = 0;
  private wanted = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private idleTimer: ReturnType<typeof setTimeout> | null = null;
  private waiting: ((open: boolean) => void)[] = [];
  private openListeners = new Set<() => void>();
  /** Followers per job id; the gateway follows a job once per connection, however many of them there are. */
  private followers = new Map<string, Set<FollowHandlers>>();

  constructor(options: JobSocketOptions = {}) {
    this.url = options.url ?? (() => jobSocketUrl());
    this.open = options.open ?? ((url) => new WebSocket(url));
    this.initialBackoffMs = options.initialBackoffMs ?? 1000;
    this.maxBackoffMs = options.maxBackoffMs ?? 30_000;
    this.openTimeoutMs = options.openTimeoutMs ?? 10_000;
    this.idleCloseMs = options.idleCloseMs ?? 30_000;
    this.random = options.random ?? Math.random;
  }

  get state(): SocketState {
    return this._state;
  }

  /** Keeps the socket (and its reconnects) wanted until the returned function is called. */
  hold(): () => void {
    this.wanted += 1;
    if (this.idleTimer !== null) {
      clearTimeout(this.idleTimer);
      this.idleTimer = null;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.wanted -= 1;
      if (this.wanted === 0) this.unwanted();
    };
  }

  /**
   * Whether the socket is open for following jobs: true at once when it is, after the handshake when one is
   * under way or starts now; false while it is backing off after a failure (the caller uses SSE meanwhile
   * and hears of the reconnect through `onOpen`).
   */
  ready(signal?: AbortSignal): Promise<boolean> {
    if (this._state === "open" && this.socketUrl !== this.url()) {
      // The API key changed: the open socket speaks for the old one, whose jobs are not the new key's.
      this.drop("the API key changed", false);
      this.connect();
    }
    if (this._state === "idle") this.connect();
    // Open, backing off, or a socket that could not even be created (connect gave up at once).
    if (this._state !== "connecting") return Promise.resolve(this._state === "open");
    return new Promise((resolve) => {
      const settle = (open: boolean) => {
        signal?.removeEventListener("abort", aborted);
        resolve(open);
      };
      const aborted = () => {
        this.waiting = this.waiting.filter((w) => w !== settle);
        resolve(false);
      };
      this.waiting.push(settle);
      signal?.addEventListener("abort", aborted, { once: true });
    });
  }

  /** Calls `listener` each time the socket (re)opens; returns the function that stops that. */
  onOpen(listener: () => void): () => void {
    this.openListeners.add(listener);
    return () => this.openListeners.delete(listener);
  }

  /**
   * Follows job `id` on the open socket (call `ready` first); returns the function that stops following.
   * Frames of the job go to `handlers.frame`; the gateway sends its snapshot first and ends the subscription
   * itself after the terminal status event.
   */
  follow(id: string, handlers: FollowHandlers, previews = true): () => void {
    if (this._state !== "open" || this.socket === null) {
      handlers.lost("the socket is not open");
      return () => undefined;
    }
    let set = this.followers.get(id);
    if (!set) {
      set = new Set();
      this.followers.set(id, set);
      this.send({ type: "subscribe", job_ids: [id], previews });
    }
    set.add(handlers);
    return () => {
      const current = this.followers.get(id);
      if (!current?.delete(handlers) || current.size > 0) return;
      this.followers.delete(id);
      if (this._state === "open") this.send({ type: "unsubscribe", job_ids: [id] });
    };
  }

  private send(message: unknown): void {
    try {
      this.socket?.send(JSON.stringify(message));
    } catch {
      // A socket closing under us reports its close next; that is where followers hear of it.
    }
  }

  private connect(): void {
    this.clearTimer();
    this._state = "connecting";
    this.socketUrl = this.url();
    let socket: SocketLike;
    try {
      socket = this.open(this.socketUrl);
    } catch (err) {
      // A malformed URL or a page that forbids sockets: as good as a refused handshake.
      console.warn("job socket could not be created", err);
      this.failed();
      return;
    }
    this.socket = socket;
    this.timer = setTimeout(() => {
      if (this.socket === socket) this.drop("the handshake timed out", true);
    }, this.openTimeoutMs);
    socket.onopen = () => {
      if (this.socket !== socket) return;
      this.clearTimer();
      this._state = "open";
      this.settleWaiting(true);
      for (const listener of [...this.openListeners]) listener();
      if (this.wanted === 0) this.unwanted();
    };
    socket.onmessage = (event) => {
      if (this.socket !== socket || typeof event.data !== "string") return;
      // The backoff starts over once the gateway has said something, not at the open: a proxy that accepts
      // the upgrade and hangs up at once would otherwise be retried every first delay, forever.
      this.failures = 0;
      this.receive(event.data);
    };
    // An error is always followed by a close; the close is where the socket is given up.
    socket.onerror = () => undefined;
    socket.onclose = (event) => {
      if (this.socket === socket) this.drop(`the socket closed (${event.code})`, true);
    };
  }

  private receive(text: string): void {
    let frame: unknown;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (typeof frame !== "object" || frame === null) return;
    const message = frame as Record<string, unknown>;
    if (message.type === "error") {
      const id = typeof message.job_id === "string" ? message.job_id : null;
      if (id === null) {
        console.warn("the gateway refused a job socket message", errorMessage(message));
        return;
      }
      // The gateway stopped following this job for this connection: its watchers go to SSE.
      const set = this.followers.get(id);
      this.followers.delete(id);
      for (const handlers of set ?? []) handlers.lost(errorMessage(message));
      return;
    }
    if (!isJobFrame(frame)) return;
    const set = this.followers.get(frame.job_id);
    if (!set) return;
    // After its terminal status the gateway follows the job no more; a later follow subscribes again.
    if (frame.type === "status" && frame.terminal === true) this.followers.delete(frame.job_id);
    for (const handlers of [...set]) handlers.frame(frame);
  }

  /** Gives the current socket up; with `failure`, the next attempt waits out a growing backoff. */
  private drop(reason: string, failure: boolean): void {
    const socket = this.socket;
    this.socket = null;
    this.clearTimer();
    if (socket) {
      socket.onopen = socket.onmessage = socket.onerror = socket.onclose = null;
      if (socket.readyState <= OPEN) socket.close(1000);
    }
    const followers = [...this.followers.values()];
    this.followers.clear();
    for (const set of followers) for (const handlers of set) handlers.lost(reason);
    if (failure) this.failed();
    else {
      this._state = "idle";
      this.settleWaiting(false);
    }
  }

  private failed(): void {
    this.socket = null;
    this.settleWaiting(false);
    if (this.wanted === 0) {
      // Nobody waits for the socket: the next watch tries it afresh, still paying the grown backoff if
      // that one fails too.
      this.failures += 1;
      this._state = "idle";
      return;
    }
    const ceiling = Math.min(this.maxBackoffMs, this.initialBackoffMs * 2 ** this.failures);
    this.failures += 1;
    // Half fixed, half random: reconnects from many pages after a gateway restart do not arrive together.
    const delay = ceiling / 2 + (this.random() * ceiling) / 2;
    this._state = "backoff";
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.wanted > 0) this.connect();
      else this._state = "idle";
    }, delay);
  }

  private unwanted(): void {
    if (this._state === "backoff") {
      this.clearTimer();
      this._state = "idle";
    } else if (this._state === "open" && this.idleTimer === null) {
      this.idleTimer = setTimeout(() => {
        this.idleTimer = null;
        if (this.wanted === 0 && this._state === "open") this.drop("idle", false);
      }, this.idleCloseMs);
    }
  }

  private settleWaiting(open: boolean): void {
    const waiting = this.waiting;
    this.waiting = [];
    for (const settle of waiting) settle(open);
  }

  private clearTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}

let shared: JobSocket | null | undefined;

/** The page's one job socket; null where there is no WebSocket (then watches start with SSE). */
export function sharedJobSocket(): JobSocket | null {
  if (shared === undefined) shared = typeof WebSocket === "undefined" ? null : new JobSocket();
  return shared;
}
