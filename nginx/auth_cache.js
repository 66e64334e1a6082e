// The auth cache's key (nginx/nginx.conf, location /_auth): sha256 of the Authorization header
// and the required scope. nginx writes a cache entry's key in clear into the entry's file, so a
// key made of the header itself would leave every live bearer token on disk; this one leaves
// only a digest, as the auth service's own store does (docs/gateway.md, "Tokens at rest").
import crypto from 'crypto';

function key(r) {
    const authorization = r.variables.http_authorization || '';
    const scope = r.variables.required_scope || '';
    return crypto.createHash('sha256').update(authorization + '|' + scope).digest('hex');
}

export default { key };
