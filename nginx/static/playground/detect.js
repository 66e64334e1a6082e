// The detect panel: an image (file input or drag and drop) sent once to /detect with a low
// confidence threshold; the boxes are drawn over the image on a canvas, and the confidence
// slider re-filters them in the page, without another request.

import { byId, element, feedback, percent } from "./ui.js";

// The one request asks for everything above this; the slider only ever narrows it down.
export const REQUEST_CONFIDENCE = 0.05;
const COLOURS = { chat: "#d9480f", rat: "#1971c2" };
const OTHER_COLOUR = "#2b8a3e";

export function setUpDetect(session) {
  const drop = byId("detect-drop");
  const input = byId("detect-file");
  const slider = byId("detect-confidence");
  const sliderValue = byId("detect-confidence-value");
  const canvas = byId("detect-canvas");
  const list = byId("detect-results");
  const say = feedback("detect-status", "detect-error");

  slider.min = String(REQUEST_CONFIDENCE);
  let picture = null; // the ImageBitmap shown
  let answer = null; // the last /detect answer for that picture
  let generation = 0; // later uploads win over answers still on their way

  function threshold() {
    return Number(slider.value);
  }

  function shown() {
    if (!answer) return [];
    return answer.detections.filter((d) => d.confidence >= threshold());
  }

  function draw() {
    sliderValue.textContent = threshold().toFixed(2);
    const boxes = shown();
    list.replaceChildren(
      ...boxes.map((d) => {
        const { x_min, y_min, x_max, y_max } = d.box;
        const item = element("li", "detection");
        item.dataset.label = d.label;
        item.append(
          element("span", "detection-label", d.label),
          element("span", "detection-confidence", percent(d.confidence)),
          element(
            "span",
            "detection-box",
            `(${Math.round(x_min)}, ${Math.round(y_min)}) – (${Math.round(x_max)}, ${Math.round(y_max)})`,
          ),
        );
        return item;
      }),
    );
    if (answer) {
      const total = answer.detections.length;
      say.status(
        `${boxes.length} of ${total} box${total === 1 ? "" : "es"} shown ` +
          `(confidence ≥ ${threshold().toFixed(2)}).`,
      );
    }
    if (!picture) return; // the browser could not decode it: the list only
    const context = canvas.getContext("2d");
    context.drawImage(picture, 0, 0);
    if (!answer) return;
    // Boxes are in the original image's pixels; the canvas has the size the browser decoded.
    const sx = canvas.width / answer.image.width;
    const sy = canvas.height / answer.image.height;
    const line = Math.max(2, Math.round(Math.min(canvas.width, canvas.height) / 200));
    const fontSize = Math.max(12, Math.round(Math.min(canvas.width, canvas.height) / 25));
    context.lineWidth = line;
    context.font = `600 ${fontSize}px system-ui, sans-serif`;
    context.textBaseline = "top";
    for (const d of boxes) {
      const colour = COLOURS[d.label] || OTHER_COLOUR;
      const x = d.box.x_min * sx;
      const y = d.box.y_min * sy;
      const w = (d.box.x_max - d.box.x_min) * sx;
      const h = (d.box.y_max - d.box.y_min) * sy;
      context.strokeStyle = colour;
      context.strokeRect(x, y, w, h);
      const caption = `${d.label} ${d.confidence.toFixed(2)}`;
      const width = context.measureText(caption).width + 2 * line;
      const height = fontSize + 2 * line;
      const top = y - height >= 0 ? y - height : y; // above the box, or inside at the top
      context.fillStyle = colour;
      context.fillRect(x - line / 2, top, width, height);
      context.fillStyle = "#fff";
      context.fillText(caption, x + line / 2, top + line);
    }
  }

  async function detect(file) {
    const mine = ++generation;
    answer = null;
    list.replaceChildren();
    say.clear(); // what is not an image gets the gateway's own sentence
    let bitmap;
    try {
      bitmap = await createImageBitmap(file); // EXIF orientation applied, as the gateway does
    } catch {
      bitmap = null; // the browser cannot show it; the gateway may still read it
    }
    if (mine !== generation) return;
    if (picture) picture.close();
    picture = bitmap;
    canvas.hidden = !bitmap;
    if (bitmap) {
      canvas.width = bitmap.width;
      canvas.height = bitmap.height;
      canvas.setAttribute("aria-label", `${file.name} with the boxes found`);
      draw();
    }
    say.status(`Detecting in ${file.name}…`);
    const body = new FormData();
    body.append("image", file, file.name);
    const query = new URLSearchParams({ confidence: String(REQUEST_CONFIDENCE) });
    try {
      const result = await session.json(`/detect?${query}`, { method: "POST", body });
      if (mine !== generation) return;
      answer = result;
      draw();
    } catch (error) {
      if (mine === generation) say.fail(error);
    }
  }

  input.addEventListener("change", () => {
    const [file] = input.files;
    if (file) detect(file);
  });
  slider.addEventListener("input", draw);

  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => {
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
      drop.classList.add("dragging");
    });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("dragging"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("dragging");
    const [file] = event.dataTransfer.files;
    if (file) detect(file);
  });
  // A file dropped beside the zone must not make the browser navigate away to it.
  for (const name of ["dragover", "drop"]) {
    window.addEventListener(name, (event) => event.preventDefault());
  }

  draw();
  return {
    reset() {
      generation += 1;
      answer = null;
      if (picture) picture.close();
      picture = null;
      input.value = "";
      canvas.hidden = true;
      canvas.width = 0;
      canvas.height = 0;
      list.replaceChildren();
      say.clear();
    },
  };
}
