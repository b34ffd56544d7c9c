import { failureFrom } from "./client";

const envelope = (code: string, message: string, details: { field: string; message: string }[] = [], available?: string[]) => ({
  error: { code, message, details, available },
});

describe("failureFrom", () => {
  it("keeps field details of a 400", () => {
    const f = failureFrom(new Response(null, { status: 400 }), envelope("invalid_request", "width: bad", [{ field: "width", message: "bad" }]));
    expect(f.status).toBe(400);
    expect(f.details).toEqual([{ field: "width", message: "bad" }]);
  });
  it("says plainly that the queue is full and when to retry", () => {
    const f = failureFrom(new Response(null, { status: 429, headers: { "Retry-After": "5" } }), envelope("queue_full", "1000 jobs queued"));
    expect(f.message).toBe("The queue is full: 1000 jobs queued. Try again in 5 s.");
    expect(f.retryAfterS).toBe(5);
  });
  it("lists the available values of an unknown model", () => {
    const f = failureFrom(new Response(null, { status: 404 }), envelope("not_found", "unknown model 'x'", [], ["tiny-sd15"]));
    expect(f.message).toBe("unknown model 'x' (available: tiny-sd15)");
  });
  it("points to Settings on 401 and describes a body it does not understand", () => {
    expect(failureFrom(new Response(null, { status: 401 }), envelope("unauthorized", "missing key")).message).toMatch(/Settings/);
    expect(failureFrom(new Response(null, { status: 502, statusText: "Bad Gateway" }), "<html>").message).toBe("The gateway answered 502 Bad Gateway");
  });
});
