//! `Warning:` response headers. A real API server answers a write whose unknown fields it
//! dropped (`fieldValidation` absent or `Warn`, the default since Kubernetes 1.27) with
//! `Warning: 299 - "unknown field \"spec.bogus\""` (apiserver `pkg/endpoints/handlers/rest.go`
//! and `pkg/warning`); clients such as kubectl and client-go print them. Code that admits a
//! request calls [`push`]; the API layer's middleware turns what was pushed into headers.

use std::cell::RefCell;
use std::future::Future;

tokio::task_local! {
    static WARNINGS: RefCell<Vec<String>>;
}

/// Records a warning for the request being served (nothing outside a request).
pub fn push(text: String) {
    let _ = WARNINGS.try_with(|w| {
        let mut w = w.borrow_mut();
        if !w.contains(&text) {
            w.push(text);
        }
    });
}

/// Runs `f` collecting the warnings pushed while it runs.
pub async fn collect<F: Future>(f: F) -> (F::Output, Vec<String>) {
    WARNINGS
        .scope(RefCell::new(Vec::new()), async {
            let out = f.await;
            (out, WARNINGS.with(|w| w.take()))
        })
        .await
}

/// A warning as the header carries it: code 299, agent `-`, the text quoted as Go's
/// `strconv.Quote` does for the characters that occur here (apiserver `pkg/warning`
/// `headerValue`).
pub fn header_value(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_ascii_graphic() || c == ' ' => quoted.push(c),
            c => quoted.push_str(&format!("\\u{:04x}", u32::from(c))),
        }
    }
    format!("299 - \"{quoted}\"")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_warning_is_quoted_as_go_quotes_it() {
        assert_eq!(
            super::header_value("unknown field \"spec.bogus\""),
            "299 - \"unknown field \\\"spec.bogus\\\"\""
        );
    }
}
