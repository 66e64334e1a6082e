// The classify panel: a text, the news classifier's top categories as probability bars.

import { byId, element, feedback, percent } from "./ui.js";

export function setUpClassify(session) {
  const form = byId("classify-form");
  const text = byId("classify-text");
  const topK = byId("classify-top-k");
  const submit = byId("classify-submit");
  const results = byId("classify-results");
  const say = feedback("classify-status", "classify-error");

  function show(categories) {
    results.replaceChildren(
      ...categories.map(({ label, probability }) => {
        const item = element("li", "bar-row");
        item.append(element("span", "bar-label", label));
        const track = element("span", "bar-track");
        const bar = element("span", "bar");
        bar.style.width = `${Math.max(0, Math.min(1, probability)) * 100}%`;
        track.append(bar);
        track.setAttribute("aria-hidden", "true");
        item.append(track, element("span", "bar-value", percent(probability)));
        return item;
      }),
    );
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = text.value.trim();
    if (!value) {
      say.error("Write a text to classify.");
      text.focus();
      return;
    }
    say.clear();
    say.status("Classifying…");
    submit.disabled = true;
    try {
      const answer = await session.json("/classify", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ text: value, top_k: Number(topK.value) }),
      });
      const [prediction] = answer.predictions;
      show(prediction.categories);
      say.status(`${answer.model.name} version ${answer.model.version}`);
    } catch (error) {
      results.replaceChildren();
      say.fail(error);
    } finally {
      submit.disabled = false;
    }
  });

  return {
    reset() {
      results.replaceChildren();
      say.clear();
    },
  };
}
