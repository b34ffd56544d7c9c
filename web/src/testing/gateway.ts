// For unit tests only: the gateway is not running there, so fetch answers from these routes ("METHOD /path").
// The real gateway is driven by the browser tests in tests/e2e.
import { RefusedWebSocket } from "./socket";

export type Route = (request: Request) => Response | Promise<Response>;

export const json = (body: unknown, status = 200) =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });

/**
 * Replaces fetch for the current test (undo with vi.unstubAllGlobals); returns every request it saw. The stub
 * has no /api/v1/ws: the page's WebSocket is refused at once, so job watches run on SSE and polling here
 * (src/api/ws.test.ts and watch.test.ts script the socket themselves).
 */
export function stubGateway(routes: Record<string, Route>): Request[] {
  const seen: Request[] = [];
  vi.stubGlobal("WebSocket", RefusedWebSocket);
  vi.stubGlobal("fetch", async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = input instanceof Request ? input : new Request(new URL(String(input), window.location.origin), init);
    seen.push(request);
    const path = new URL(request.url).pathname;
    const route = routes[`${request.method} ${path}`];
    return route ? route(request) : json({ error: { code: "not_found", message: `no route ${path}` } }, 404);
  });
  return seen;
}
