import { QueryClientProvider } from "@tanstack/react-query";
import { fireEvent, render, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { useState } from "react";

import { makeQueryClient } from "@/api/queries";
import { json, stubGateway } from "@/testing/gateway";

import { PngInfoDrop } from "./PngInfoDrop";

const parameters = { Prompt: "a lighthouse", "Negative prompt": "blurry", Steps: "23", Seed: "1234" };

function Harness({ onFill }: { onFill: (p: Record<string, string>) => void }) {
  const [client] = useState(makeQueryClient);
  return (
    <QueryClientProvider client={client}>
      <PngInfoDrop onFill={onFill} />
    </QueryClientProvider>
  );
}

const png = () => new File([new Uint8Array([137, 80, 78, 71])], "a1111.png", { type: "image/png" });

afterEach(() => vi.unstubAllGlobals());

describe("PngInfoDrop", () => {
  it("sends a dropped image to the gateway's parser and fills the form in one click", async () => {
    let sent: unknown = null;
    stubGateway({
      "POST /api/v1/png-info": async (r) => {
        sent = await r.json();
        return json({ source: "a1111", info: "a lighthouse\n...", items: {}, parameters });
      },
    });
    const onFill = vi.fn();
    render(<Harness onFill={onFill} />);
    fireEvent.drop(window, { dataTransfer: { files: [png()], types: ["Files"] } });
    expect(await screen.findByTestId("png-info-source", {}, { timeout: 3000 })).toHaveTextContent("A1111-style parameters");
    expect(sent).toEqual({ image: "iVBORw==" });
    expect(screen.getByTestId("png-info-parameters")).toHaveTextContent("Steps23");
    await userEvent.click(screen.getByRole("button", { name: "Fill the form", hidden: true }));
    expect(onFill).toHaveBeenCalledWith(parameters);
  });

  it("reads a pasted image; says so when it has no parameters and offers nothing to fill", async () => {
    stubGateway({ "POST /api/v1/png-info": () => json({ source: "none", info: "", items: {}, parameters: {} }) });
    render(<Harness onFill={vi.fn()} />);
    fireEvent.paste(window, { clipboardData: { files: [png()] } });
    await waitFor(() => expect(screen.getByTestId("png-info-source")).toHaveTextContent("No generation parameters"));
    expect(screen.queryByRole("button", { name: "Fill the form", hidden: true })).toBeNull();
  });

  it("shows the gateway's reason for an image it cannot read", async () => {
    stubGateway({
      "POST /api/v1/png-info": () => json({ error: { code: "invalid_request", message: "image: not an image Pillow can open" } }, 400),
    });
    render(<Harness onFill={vi.fn()} />);
    fireEvent.drop(window, { dataTransfer: { files: [png()], types: ["Files"] } });
    expect(await screen.findByText(/not an image Pillow can open/)).toBeInTheDocument();
  });

  it("leaves a plain text paste alone", () => {
    const seen = stubGateway({});
    render(<Harness onFill={vi.fn()} />);
    const event = new Event("paste", { cancelable: true });
    Object.assign(event, { clipboardData: { files: [] } });
    window.dispatchEvent(event);
    expect(event.defaultPrevented).toBe(false);
    expect(seen).toHaveLength(0);
  });
});
