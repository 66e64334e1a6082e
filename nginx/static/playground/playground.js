// The playground: sign in with an OAuth2 client of the gateway, then try the classifier, the
// detector and the VAE. No build step, no third-party code; the token lives in memory only
// (api.js).

import { createSession } from "./api.js";
import { setUpClassify } from "./classify.js";
import { setUpDetect } from "./detect.js";
import { byId } from "./ui.js";
import { setUpVae } from "./vae.js";

const session = createSession();
const panels = [setUpClassify(session), setUpDetect(session)];
const vae = setUpVae(session);
panels.push(vae);

const signInPanel = byId("sign-in-panel");
const signInForm = byId("sign-in-form");
const signInButton = byId("sign-in");
const signInError = byId("sign-in-error");
const clientId = byId("client-id");
const clientSecret = byId("client-secret");
const sessionBar = byId("session");
const sessionText = byId("session-text");
const panelsArea = byId("panels");

function showSignedIn() {
  const scopes = session.scopes.join(" ") || "none";
  sessionText.textContent = `Signed in as ${session.clientId} (scopes: ${scopes})`;
  sessionBar.hidden = false;
  signInPanel.hidden = true;
  panelsArea.hidden = false;
}

function showSignedOut(message) {
  for (const panel of panels) panel.reset();
  sessionBar.hidden = true;
  panelsArea.hidden = true;
  signInPanel.hidden = false;
  signInError.textContent = message || "";
  clientSecret.value = "";
  clientId.focus();
}

signInForm.addEventListener("submit", async (event) => {
  event.preventDefault(); // never a native submission: the secret goes in a fetch body only
  const id = clientId.value.trim();
  const secret = clientSecret.value;
  if (!id || !secret) {
    signInError.textContent = "Give a client id and its secret.";
    return;
  }
  signInError.textContent = "";
  signInButton.disabled = true;
  try {
    await session.signIn(id, secret);
    clientSecret.value = ""; // kept in the session's closure only, not in the page
    showSignedIn();
    await vae.loadRange();
  } catch (error) {
    signInError.textContent = error.message;
    clientSecret.select();
  } finally {
    signInButton.disabled = false;
  }
});

byId("sign-out").addEventListener("click", async () => {
  const signedOut = session.signOut();
  showSignedOut("Signed out.");
  await signedOut;
});

document.documentElement.dataset.ready = "true";
