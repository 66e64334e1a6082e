// The gateway's API from the playground: an OAuth2 client-credentials session whose
// credentials and access token live in this module's closure only (never in localStorage,
// sessionStorage, cookies or IndexedDB), and the gateway's error sentences.

const EXPIRY_MARGIN_MS = 10_000;

/** An Error whose message is the gateway's (or the auth service's) own sentence. */
export class GatewayError extends Error {
  constructor(message, status, code) {
    super(message);
    this.name = "GatewayError";
    this.status = status;
    this.code = code;
  }
}

/** The sentence of an error answer: `detail`, else `error_description`, else `error`. */
export function errorSentence(body, status) {
  if (body && typeof body === "object") {
    const { detail } = body;
    if (typeof detail === "string" && detail) return detail;
    if (Array.isArray(detail) && detail.length) {
      return detail.map((item) => (item && item.msg) || JSON.stringify(item)).join("; ");
    }
    if (typeof body.error_description === "string" && body.error_description) {
      return body.error_description;
    }
    if (typeof body.error === "string" && body.error) return body.error;
  }
  return `HTTP ${status}`;
}

async function failure(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: the status says it
  }
  const code = body && typeof body.error === "string" ? body.error : undefined;
  return new GatewayError(errorSentence(body, response.status), response.status, code);
}

// credentials: "omit" everywhere: no cookies are sent or stored, and a 401 with a Basic
// challenge from the token endpoint can never make the browser prompt for a password.
async function post(path, form) {
  return fetch(path, {
    method: "POST",
    credentials: "omit",
    headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
    body: new URLSearchParams(form),
  });
}

/**
 * A signed-in client. `request(path, init)` sends the bearer token, takes a new token once
 * when the current one has expired or is refused as invalid, and throws a GatewayError with
 * the gateway's sentence for any answer that is not 2xx.
 */
export function createSession() {
  let credentials = null; // { clientId, clientSecret }
  let token = null; // { value, expiresAt, scopes }

  let pending = null; // the token request in flight, shared by concurrent callers

  async function fetchToken() {
    const held = credentials;
    const response = await post("/oauth2/token", {
      grant_type: "client_credentials",
      client_id: held.clientId,
      client_secret: held.clientSecret,
    });
    if (!response.ok) throw await failure(response);
    const body = await response.json();
    if (credentials !== held) throw new GatewayError("Signed out.", 0, "signed_out");
    token = {
      value: body.access_token,
      expiresAt: Date.now() + Number(body.expires_in || 0) * 1000,
      scopes: String(body.scope || "").split(" ").filter(Boolean),
    };
  }

  async function currentToken() {
    if (!credentials) throw new GatewayError("Sign in first.", 0, "signed_out");
    if (!token || Date.now() > token.expiresAt - EXPIRY_MARGIN_MS) {
      if (!pending) {
        const request = fetchToken().finally(() => {
          if (pending === request) pending = null;
        });
        pending = request;
      }
      await pending;
    }
    if (!token) throw new GatewayError("Sign in first.", 0, "signed_out");
    return token.value;
  }

  async function send(path, init, value) {
    const headers = new Headers(init.headers || {});
    headers.set("Authorization", `Bearer ${value}`);
    return fetch(path, { ...init, headers, credentials: "omit", cache: "no-store" });
  }

  return {
    get signedIn() {
      return credentials !== null;
    },
    get clientId() {
      return credentials ? credentials.clientId : null;
    },
    get scopes() {
      return token ? [...token.scopes] : [];
    },

    /** Takes a token with these credentials; keeps both only when that works. */
    async signIn(clientId, clientSecret) {
      credentials = { clientId, clientSecret };
      token = null;
      pending = null;
      try {
        await currentToken();
      } catch (error) {
        credentials = null;
        token = null;
        throw error;
      }
    },

    /** Forgets the credentials and the token, and asks the auth service to revoke it. */
    async signOut() {
      const held = credentials;
      const value = token && token.value;
      credentials = null;
      token = null;
      pending = null;
      if (held && value) {
        try {
          await post("/oauth2/revoke", {
            token: value,
            token_type_hint: "access_token",
            client_id: held.clientId,
            client_secret: held.clientSecret,
          });
        } catch {
          // offline or refused: the token is forgotten here all the same and expires
        }
      }
    },

    async request(path, init = {}) {
      let value = await currentToken();
      let response = await send(path, init, value);
      if (response.status === 401) {
        const error = await failure(response);
        if (error.code !== "invalid_token" || !credentials) throw error;
        token = null; // expired or revoked: one new token, one more try
        value = await currentToken();
        response = await send(path, init, value);
      }
      if (!response.ok) throw await failure(response);
      return response;
    },

    async json(path, init = {}) {
      const headers = new Headers(init.headers || {});
      headers.set("Accept", "application/json");
      const response = await this.request(path, { ...init, headers });
      return response.json();
    },
  };
}
