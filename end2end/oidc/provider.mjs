// A real OpenID provider for the browser tests: `oidc-provider` (an OpenID Certified™ server),
// configured with one client, KRaft. Its development login page takes any login name with any
// password; the name is the subject, and the account's claims follow from it:
//   - email `<name>@idp.example`, verified (unless the name starts with `unverified-`);
//   - groups ["kraft-admins"] when the name starts with `admin-`.
// Scope claims are released from the userinfo endpoint, not the ID token (the provider's default,
// OIDC Core 5.4), so KRaft's userinfo path is exercised too.
import Provider from 'oidc-provider';

const port = Number(process.env.OIDC_PORT ?? 3918);
const redirect = process.env.OIDC_REDIRECT_URI ?? 'http://127.0.0.1:3917/auth/oidc/callback';

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [
    {
      client_id: 'kraft',
      client_secret: process.env.OIDC_CLIENT_SECRET ?? 'kraft-e2e-secret',
      redirect_uris: [redirect],
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['preferred_username', 'name'],
    groups: ['groups'],
  },
  scopes: ['openid', 'email', 'profile', 'groups'],
  pkce: { required: () => true },
  cookies: { keys: ['kraft-e2e-only-cookie-key'] },
  features: { devInteractions: { enabled: true } },
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          email: `${id.replace(/^unverified-/, '')}@idp.example`,
          email_verified: !id.startsWith('unverified-'),
          preferred_username: id,
          name: id,
          groups: id.startsWith('admin-') ? ['kraft-admins'] : [],
        };
      },
    };
  },
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on http://127.0.0.1:${port}`);
});
