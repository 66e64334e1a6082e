// The VAE panel: the 2-D latent plane, decoded live under the pointer through /vae/decode
// (one request in flight at most, always ending on the latest point), and the K x K walk grid
// from /vae/sample as one PNG.

import { byId, feedback } from "./ui.js";

// app/generation.py's default, used when the model's range cannot be read.
export const DEFAULT_RANGE = [-3, 3];
const KEY_STEP = 0.1;

function digits(value) {
  return value.toFixed(2);
}

export function setUpVae(session) {
  const plane = byId("vae-plane");
  const image = byId("vae-image");
  const coordinates = byId("vae-coordinates");
  const gridK = byId("vae-grid-k");
  const gridButton = byId("vae-grid-button");
  const gridFigure = byId("vae-grid-figure");
  const gridImage = byId("vae-grid");
  const gridCaption = byId("vae-grid-caption");
  const say = feedback("vae-status", "vae-error");

  let range = [...DEFAULT_RANGE];
  let rangeKnown = false; // read from the model's metadata, not the default
  let point = null; // the latent under the pointer: [x, y]
  let inFlight = false;
  let wanted = null; // the latest point not yet sent
  let gridUrl = null; // the walk grid's blob URL, revoked when replaced
  let generation = 0; // answers from before a sign-out are dropped

  // Plane coordinates: x from low (left) to high (right), y from high (top) to low (bottom):
  // the orientation of the walk grid.
  function toLatent(px, py) {
    const [low, high] = range;
    const x = low + (px / plane.width) * (high - low);
    const y = high - (py / plane.height) * (high - low);
    return [clamp(x), clamp(y)];
  }

  function toPixels([x, y]) {
    const [low, high] = range;
    return [
      ((x - low) / (high - low)) * plane.width,
      ((high - y) / (high - low)) * plane.height,
    ];
  }

  function clamp(value) {
    return Math.min(range[1], Math.max(range[0], value));
  }

  function drawPlane() {
    const context = plane.getContext("2d");
    const { width, height } = plane;
    context.fillStyle = "#f8f9fa";
    context.fillRect(0, 0, width, height);
    context.lineWidth = 1;
    context.font = "11px system-ui, sans-serif";
    context.fillStyle = "#868e96";
    const [low, high] = range;
    for (let tick = Math.ceil(low); tick <= Math.floor(high); tick += 1) {
      const [tx, ty] = toPixels([tick, tick]);
      context.strokeStyle = tick === 0 ? "#495057" : "#dee2e6";
      context.beginPath();
      context.moveTo(Math.round(tx) + 0.5, 0);
      context.lineTo(Math.round(tx) + 0.5, height);
      context.moveTo(0, Math.round(ty) + 0.5);
      context.lineTo(width, Math.round(ty) + 0.5);
      context.stroke();
      if (tick !== 0) {
        context.fillText(String(tick), tx + 3, toPixels([0, 0])[1] - 4);
        context.fillText(String(tick), toPixels([0, 0])[0] + 3, ty - 3);
      }
    }
    if (point) {
      const [px, py] = toPixels(point);
      context.fillStyle = "#d9480f";
      context.beginPath();
      context.arc(px, py, 5, 0, 2 * Math.PI);
      context.fill();
    }
  }

  async function decode(latent) {
    const mine = generation;
    inFlight = true;
    try {
      const answer = await session.json("/vae/decode", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ latents: [latent] }),
      });
      if (mine !== generation) return;
      const [sample] = answer.samples;
      image.src = `data:image/png;base64,${sample.image}`;
      image.alt = `The digit decoded at (${digits(latent[0])}, ${digits(latent[1])})`;
      image.hidden = false;
      image.dataset.latent = latent.join(",");
      coordinates.textContent = `z = (${digits(latent[0])}, ${digits(latent[1])})`;
      say.error("");
    } catch (error) {
      if (mine === generation) say.fail(error);
    } finally {
      if (mine === generation) {
        inFlight = false;
        if (wanted) {
          const next = wanted;
          wanted = null;
          decode(next);
        }
      }
    }
  }

  function moveTo(latent) {
    point = latent;
    drawPlane();
    plane.setAttribute(
      "aria-label",
      `Latent plane, point (${digits(latent[0])}, ${digits(latent[1])})`,
    );
    if (inFlight) {
      wanted = latent; // sent when the answer in flight comes back
    } else {
      decode(latent);
    }
  }

  function fromEvent(event) {
    const rect = plane.getBoundingClientRect();
    const px = ((event.clientX - rect.left) / rect.width) * plane.width;
    const py = ((event.clientY - rect.top) / rect.height) * plane.height;
    return toLatent(px, py);
  }

  plane.addEventListener("pointermove", (event) => moveTo(fromEvent(event)));
  plane.addEventListener("pointerdown", (event) => moveTo(fromEvent(event)));
  plane.addEventListener("keydown", (event) => {
    const [x, y] = point || [0, 0];
    const moves = {
      ArrowLeft: [x - KEY_STEP, y],
      ArrowRight: [x + KEY_STEP, y],
      ArrowUp: [x, y + KEY_STEP],
      ArrowDown: [x, y - KEY_STEP],
    };
    if (!(event.key in moves)) return;
    event.preventDefault();
    const [nx, ny] = moves[event.key];
    moveTo([clamp(nx), clamp(ny)]);
  });

  gridButton.addEventListener("click", async () => {
    const k = Number(gridK.value);
    const mine = generation;
    say.clear();
    say.status(`Decoding a ${k} × ${k} walk…`);
    gridButton.disabled = true;
    try {
      const query = new URLSearchParams({ grid: String(k), format: "png" });
      const response = await session.request(`/vae/sample?${query}`, {
        headers: { Accept: "image/png" },
      });
      const blob = await response.blob();
      if (mine !== generation) return;
      if (gridUrl) URL.revokeObjectURL(gridUrl);
      gridUrl = URL.createObjectURL(blob);
      gridImage.src = gridUrl;
      gridImage.alt = `A ${k} × ${k} walk over the latent plane`;
      gridImage.dataset.k = String(k);
      gridCaption.textContent = rangeKnown
        ? `${k} × ${k} walk: the first latent from ${range[0]} (left) to ${range[1]} ` +
          `(right), the second from ${range[1]} (top) to ${range[0]} (bottom).`
        : `${k} × ${k} walk over the model's latent range: the first latent grows to the ` +
          "right, the second upwards.";
      gridFigure.hidden = false;
      say.status("");
    } catch (error) {
      if (mine === generation) say.fail(error);
    } finally {
      gridButton.disabled = false;
    }
  });

  drawPlane();
  return {
    /** The walk range from the model's metadata, when this client may read it. */
    async loadRange() {
      const mine = generation;
      try {
        const model = await session.json("/v1/models/vae");
        const walk = model && model.latent && model.latent.walk_range;
        if (mine === generation && Array.isArray(walk) && walk.length === 2 && walk[0] < walk[1]) {
          range = walk.map(Number);
          rangeKnown = true;
        }
      } catch {
        // no models:read scope, or no range published: the default range
      }
      plane.dataset.range = range.join(",");
      drawPlane();
    },
    reset() {
      generation += 1;
      inFlight = false;
      wanted = null;
      point = null;
      range = [...DEFAULT_RANGE];
      rangeKnown = false;
      image.hidden = true;
      image.removeAttribute("src");
      delete image.dataset.latent;
      coordinates.textContent = "No point decoded yet.";
      if (gridUrl) URL.revokeObjectURL(gridUrl);
      gridUrl = null;
      gridImage.removeAttribute("src");
      gridFigure.hidden = true;
      say.clear();
      drawPlane();
    },
  };
}
