import type { NextConfig } from "next";

// A static export: the gateway serves web/out at "/", so there is no Node server in production.
const config: NextConfig = {
  output: "export",
  reactStrictMode: true,
  // The export has no image optimizer; our images come from the gateway's /outputs as they are.
  images: { unoptimized: true },
};

export default config;
