//! Page data: every resource a page reads, and how it crosses from the server to the browser.
//!
//! Leptos's own resources decode their server-rendered value with `serde_json::from_str`, while
//! server functions decode their answers with `serde_json::from_slice`. serde_json generates one
//! decoder per type *and* per reader, so every type a page both hydrates and refetches was in the
//! WebAssembly bundle twice (measured with twiggy at 8e8451e: 193 KB of `StrRead` decoders next to
//! 163 KB of `SliceRead` ones, before wasm-opt). Page data here is the same JSON on the wire, read
//! from its bytes as the server functions read theirs, so each type has one decoder. The live views'
//! websocket messages are read the same way (`serde_json::from_slice(text.as_bytes())`).

use std::future::Future;

use leptos::prelude::Resource;
use leptos::server::codee::{Decoder, Encoder};
use serde::{de::DeserializeOwned, Serialize};

/// JSON, written as Leptos writes it and read from its bytes (see the module's docs).
pub struct Json;

impl<T: Serialize> Encoder<T> for Json {
    type Error = serde_json::Error;
    type Encoded = String;

    fn encode(value: &T) -> Result<String, serde_json::Error> {
        serde_json::to_string(value)
    }
}

impl<T: DeserializeOwned> Decoder<T> for Json {
    type Error = serde_json::Error;
    type Encoded = str;

    fn decode(text: &str) -> Result<T, serde_json::Error> {
        serde_json::from_slice(text.as_bytes())
    }
}

/// A page's data: a resource that crosses to the browser as [`Json`].
pub type Data<T> = Resource<T, Json>;

/// A resource like `Resource::new`, sent as [`Json`].
#[track_caller]
pub fn data<T, S, Fut>(
    source: impl Fn() -> S + Send + Sync + 'static,
    fetcher: impl Fn(S) -> Fut + Send + Sync + 'static,
) -> Data<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
    S: Send + Sync + Clone + PartialEq + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    Resource::new_with_options(source, fetcher, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Page {
        name: String,
        clusters: Vec<u32>,
        note: Option<String>,
    }

    #[test]
    fn page_data_reads_back_what_it_wrote_as_leptos_json_does() {
        let page = Page { name: "ünïcode \"quoted\"".into(), clusters: vec![1, 2], note: None };
        let text = <Json as Encoder<Page>>::encode(&page).unwrap();
        assert_eq!(text, serde_json::to_string(&page).unwrap());
        let back: Page = <Json as Decoder<Page>>::decode(&text).unwrap();
        assert_eq!(back, page);
        assert!(<Json as Decoder<Page>>::decode("{\"name\":1}").is_err());
    }
}
