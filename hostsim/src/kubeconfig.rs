//! Kubeconfig documents: the host API's (bearer token) and a virtual cluster's (client
//! certificate, built like `k3kcli kubeconfig generate`: cluster, user and context all named
//! `default`).

use base64::Engine;

/// How the kubeconfig's user authenticates.
pub enum Credentials<'a> {
    Token(&'a str),
    ClientCert { cert_pem: &'a str, key_pem: &'a str },
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A complete kubeconfig with one cluster, user and context, all named `name`.
pub fn render(
    name: &str,
    server: &str,
    ca_pem: Option<&str>,
    credentials: Credentials<'_>,
) -> String {
    let ca = match ca_pem {
        Some(pem) => format!("    certificate-authority-data: {}\n", b64(pem)),
        None => String::new(),
    };
    let user = match credentials {
        Credentials::Token(t) => format!("    token: {t}\n"),
        Credentials::ClientCert { cert_pem, key_pem } => format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(cert_pem),
            b64(key_pem)
        ),
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {name}\n  cluster:\n    server: {server}\n{ca}contexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: {name}\ncurrent-context: {name}\npreferences: {{}}\nusers:\n- name: {name}\n  user:\n{user}"
    )
}
