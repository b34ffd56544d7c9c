import { fakeSockets } from "@/testing/socket";
import { setApiKey } from "@/lib/storage";

import { JobSocket, jobSocketUrl, type FollowHandlers, type JobFrame } from "./ws";

function recorder(): FollowHandlers & { frames: JobFrame[]; lost: (reason: string) => void; losses: string[] } {
  const frames: JobFrame[] = [];
  const losses: string[] = [];
  return { frames, losses, frame: (f) => frames.push(f), lost: (reason) => losses.push(reason) };
}

const progress = (job_id: string, step: number) => ({ type: "progress", job_id, step, total: 4, progress: step * 25 });

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe("jobSocketUrl", () => {
  it("is the page's own host, ws or wss by the page's scheme, with the key as the api_key parameter", () => {
    expect(jobSocketUrl({ protocol: "http:", host: "127.0.0.1:8080" }, "")).toBe("ws://127.0.0.1:8080/api/v1/ws");
    expect(jobSocketUrl({ protocol: "https:", host: "sd.example" }, "k y&z")).toBe("wss://sd.example/api/v1/ws?api_key=k%20y%26z");
  });
  it("reads the stored key by default", () => {
    setApiKey("stored-key");
    expect(jobSocketUrl({ protocol: "http:", host: "h" })).toBe("ws://h/api/v1/ws?api_key=stored-key");
  });
});

describe("JobSocket", () => {
  it("shares one connection between jobs, subscribing each once and routing frames by job", async () => {
    const sockets = fakeSockets();
    const socket = new JobSocket({ open: sockets.open, url: () => "ws://gw/api/v1/ws" });
    const release = socket.hold();
    const ready = socket.ready();
    sockets.at(0).accept();
    expect(await ready).toBe(true);
    const a1 = recorder();
    const a2 = recorder();
    const b = recorder();
    socket.follow("a", a1);
    socket.follow("a", a2);
    socket.follow("b", b, false);
    expect(await socket.ready()).toBe(true);
    expect(sockets.made).toHaveLength(1);
    expect(sockets.at(0).sent).toEqual([
      { type: "subscribe", job_ids: ["a"], previews: true },
      { type: "subscribe", job_ids: ["b"], previews: false },
    ]);
    sockets.at(0).push(progress("a", 1));
    sockets.at(0).push(progress("b", 2));
    sockets.at(0).push({ type: "unsubscribed", job_ids: ["x"] });
    expect(a1.frames.map((f) => f.step)).toEqual([1]);
    expect(a2.frames.map((f) => f.step)).toEqual([1]);
    expect(b.frames.map((f) => f.step)).toEqual([2]);
    release();
  });

  it("unsubscribes when the last follower of a job leaves, and not before", async () => {
    const sockets = fakeSockets();
    const socket = new JobSocket({ open: sockets.open, url: () => "ws://gw/api/v1/ws" });
    socket.hold();
    const ready = socket.ready();
    sockets.at(0).accept();
    await ready;
    const stopFirst = socket.follow("a", recorder());
    const stopSecond = socket.follow("a", recorder());
    stopFirst();
    expect(sockets.at(0).sent.map((m) => m.type)).toEqual(["subscribe"]);
    stopSecond();
    expect(sockets.at(0).sent.at(-1)).toEqual({ type: "unsubscribe", job_ids: ["a"] });
  });

  it("after a terminal status the next follow of that job subscribes again (the gateway ended it)", async () => {
    const sockets = fakeSockets();
    const socket = new JobSocket({ open: sockets.open, url: () => "ws://gw/api/v1/ws" });
    socket.hold();
    const ready = socket.ready();
    sockets.at(0).accept();
    await ready;
    const first = recorder();
    socket.follow("a", first);
    sockets.at(0).push({ type: "status", job_id: "a", status: "completed", terminal: true, job: {} });
    sockets.at(0).push(progress("a", 9));
    expect(first.frames.map((f) => f.type)).toEqual(["status"]);
    socket.follow("a", recorder());
    expect(sockets.at(0).subscribed()).toEqual(["a", "a"]);
  });

  it("an error frame about one job loses only that job's followers", async () => {
    const sockets = fakeSockets();
    const socket = new JobSocket({ open: sockets.open, url: () => "ws://gw/api/v1/ws" });
    socket.hold();
    const ready = socket.ready();
    sockets.at(0).accept();
    await ready;
    const a = recorder();
    const b = recorder();
    socket.follow("a", a);
    socket.follow("b", b);
    sockets.at(0).push({ type: "error", job_id: "a", error: { code: "not_found", message: "no job a" } });
    sockets.at(0).push(progress("b", 1));
    expect(a.losses).toEqual(["not_found: no job a"]);
    expect(b.losses).toEqual([]);
    expect(b.frames).toHaveLength(1);
    expect(socket.state).toBe("open");
  });

  it("a refused handshake answers ready with false; reconnects back off 1, 2, 4 … s up to the cap while wanted", async () => {
    vi.useFakeTimers();
    const sockets = fakeSockets();
    // random() = 1: each delay is its ceiling, so the schedule is exact.
    const socket = new JobSocket({ open: sockets.open, url: () => "ws://gw/api/v1/ws", random: () => 1, maxBackoffMs: 5000 });
    const release = socket.hold();
    const ready = socket.ready();
    sockets.at(0).refuse();
    expect(await ready).toBe(false);
    expect(socket.state).toBe("backoff");
    // While backing off, a watch is told "no" at once rather than kept waiting.
    expect(await socket.ready()).toBe(false);
    const attempts: number[] = [];
    for (const delay of [1000, 2000, 4000, 5000, 5000]) {
      await vi.advanceTimersByTimeAsync(delay - 1);
      attempts.push(sockets.made.length);
      await vi.advanceTimersByTimeAsync(1);
      attempts.push(sockets.made.length);
      sockets.at(-1).refuse();
    }
    expect(attempts).toEqual([1, 2, 2, 3, 3, 4, 4, 5, 5, 6]);
    // Nobody wants the socket any more: no further attempts.
    release();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(sockets.made).toHaveLength(6);
    expect(socket.state).toBe("idle");
  });

  it("jitters each delay between half and all of its ceiling", async () => {
    vi.useFakeTimers();
    const sockets = fakeSockets();
    const socket = new JobSocket({ open: sockets.open, url: () => "ws://gw/api/v1/ws", random: () => 0 });
    socket.hold();
    void socket.ready();
    sockets.at(0).refuse();
    await vi.advanceTimersByTimeAsync(499);
    expect(sockets.made).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(sockets.made).toHaveLength(2);
  });

  it("a drop loses every follower, reconnects after the first delay, and tells onOpen listeners", async () => {
    vi.useFakeTimers();
    const sockets = fakeSockets();
    const socket = new JobSocket({ open: sockets.open, url: () => "ws://gw/api/v1/ws", random: () => 1 });
    socket.hold();
    const opened = vi.fn();
    socket.onOpen(opened);
    const ready = socket.ready();
    sockets.at(0).accept();
    await ready;
    expect(opened).toHaveBeenCalledTimes(1);
    const a = recorder();
    const b = recorder();
    socket.follow("a", a);
    socket.follow("b", b);
    sockets.at(0).drop();
    expect(a.losses).toEqual(["the socket closed (1006)"]);
    expect(b.losses).toEqual(["the socket closed (1006)"]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(sockets.made).toHaveLength(2);
    sockets.at(1).accept();
    expect(opened).toHaveBeenCalledTimes(2);
    // Opened but closed before a single frame (a proxy hanging up on the upgrade): the delay grows.
    sockets.at(1).drop();
    await vi.advanceTimersByTimeAsync(1999);
    expect(sockets.made).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(sockets.made).toHaveLength(3);
    // A socket the gateway spoke on starts the backoff over: the next drop waits the first delay again.
    sockets.at(2).accept();
    sockets.at(2).push({ type: "unsubscribed", job_ids: ["x"] });
    sockets.at(2).drop();
    await vi.advanceTimersByTimeAsync(1000);
    expect(sockets.made).toHaveLength(4);
  });

  it("a socket the page cannot even create answers ready with false at once", async () => {
    vi.spyOn(console, "warn").mockImplementation(() => undefined);
    const socket = new JobSocket({
      url: () => "ws://gw/api/v1/ws",
      open: () => {
        throw new DOMException("refused by the page", "SecurityError");
      },
    });
    socket.hold();
    expect(await socket.ready()).toBe(false);
    expect(socket.state).toBe("backoff");
  });

  it("a handshake that hangs counts as failed after the open timeout", async () => {
    vi.useFakeTimers();
    const sockets = fakeSockets();
    const socket = new JobSocket({ open: sockets.open, url: () => "ws://gw/api/v1/ws", openTimeoutMs: 3000 });
    socket.hold();
    const ready = socket.ready();
    await vi.advanceTimersByTimeAsync(3000);
    expect(await ready).toBe(false);
    expect(sockets.at(0).readyState).toBe(3);
    expect(socket.state).toBe("backoff");
  });

  it("closes an unused socket after the idle time, and keeps it while a watch comes back in time", async () => {
    vi.useFakeTimers();
    const sockets = fakeSockets();
    const socket = new JobSocket({ open: sockets.open, url: () => "ws://gw/api/v1/ws", idleCloseMs: 5000 });
    let release = socket.hold();
    const ready = socket.ready();
    sockets.at(0).accept();
    await ready;
    release();
    await vi.advanceTimersByTimeAsync(4000);
    release = socket.hold();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(socket.state).toBe("open");
    release();
    await vi.advanceTimersByTimeAsync(5000);
    expect(socket.state).toBe("idle");
    expect(sockets.at(0).readyState).toBe(3);
  });

  it("reopens with the new key when the stored API key changed", async () => {
    const sockets = fakeSockets();
    let key = "old";
    const socket = new JobSocket({ open: sockets.open, url: () => `ws://gw/api/v1/ws?api_key=${key}` });
    socket.hold();
    let ready = socket.ready();
    sockets.at(0).accept();
    await ready;
    const a = recorder();
    socket.follow("a", a);
    key = "new";
    ready = socket.ready();
    expect(a.losses).toEqual(["the API key changed"]);
    expect(sockets.at(0).readyState).toBe(3);
    sockets.at(1).accept();
    expect(await ready).toBe(true);
    expect(sockets.made.map((s) => s.url)).toEqual(["ws://gw/api/v1/ws?api_key=old", "ws://gw/api/v1/ws?api_key=new"]);
  });
});
