"use client";
import dynamic from "next/dynamic";

// The whole UI depends on the browser (localStorage, URL hash, the API of the gateway serving it), so it is
// rendered on the client only; the static export ships just the shell.
const App = dynamic(() => import("@/components/App"), {
  ssr: false,
  loading: () => <p className="loading">Loading AbleRefusal…</p>,
});

export default function Page() {
  return <App />;
}
