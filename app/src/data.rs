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

/// A list the page already shows as server-rendered HTML (set with `inner_html`, which hydration
/// leaves as it is): `len` is how many items there are; `items` is empty where the page hydrates
/// from the server's HTML, and full where the browser fetched the list itself (a client-side
/// navigation) or on the server.
#[derive(Debug, Clone, PartialEq)]
pub struct Shown<T> {
    pub len: usize,
    pub items: Vec<T>,
}

impl<T> From<Vec<T>> for Shown<T> {
    fn from(items: Vec<T>) -> Self {
        Self { len: items.len(), items }
    }
}

/// Page data that is a [`Shown`] list, or an error: in the page it crosses as the list's length
/// only (JSON `{"Ok":3}`), or the error in full. The items are in the HTML already, so sending
/// them a second time as JSON for hydration would double the page (measured on `/clusters` with
/// 100 clusters: 44 KB of the page's 93 KB was that JSON, and encoding it about 6 % of the
/// server's time per page).
pub struct LenOnly;

impl<T, E: Serialize> Encoder<Result<Shown<T>, E>> for LenOnly {
    type Error = serde_json::Error;
    type Encoded = String;

    fn encode(value: &Result<Shown<T>, E>) -> Result<String, serde_json::Error> {
        serde_json::to_string(&value.as_ref().map(|shown| shown.len))
    }
}

impl<T, E: DeserializeOwned> Decoder<Result<Shown<T>, E>> for LenOnly {
    type Error = serde_json::Error;
    type Encoded = str;

    fn decode(text: &str) -> Result<Result<Shown<T>, E>, serde_json::Error> {
        let value: Result<usize, E> = serde_json::from_slice(text.as_bytes())?;
        Ok(value.map(|len| Shown { len, items: Vec::new() }))
    }
}

/// A resource for a list shown as server-rendered HTML, sent as [`LenOnly`].
#[track_caller]
pub fn shown<T, E, S, Fut>(
    source: impl Fn() -> S + Send + Sync + 'static,
    fetcher: impl Fn(S) -> Fut + Send + Sync + 'static,
) -> Resource<Result<Shown<T>, E>, LenOnly>
where
    T: Send + Sync + 'static,
    E: Serialize + DeserializeOwned + Send + Sync + 'static,
    S: Send + Sync + Clone + PartialEq + 'static,
    Fut: Future<Output = Result<Vec<T>, E>> + Send + 'static,
{
    Resource::new_with_options(
        source,
        move |s| {
            let list = fetcher(s);
            async move { list.await.map(Shown::from) }
        },
        false,
    )
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

    #[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
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

    #[test]
    fn a_shown_list_crosses_as_its_length_and_an_error_in_full() {
        type Listed = Result<Shown<Page>, String>;
        let page = Page { name: "a".into(), clusters: vec![], note: None };
        let listed: Listed = Ok(vec![page.clone(), page].into());
        let text = <LenOnly as Encoder<Listed>>::encode(&listed).unwrap();
        assert_eq!(text, r#"{"Ok":2}"#);
        let back = <LenOnly as Decoder<Listed>>::decode(&text).unwrap();
        assert_eq!(back, Ok(Shown { len: 2, items: vec![] }));
        let failed: Listed = Err("no <script> here".into());
        let text = <LenOnly as Encoder<Listed>>::encode(&failed).unwrap();
        assert_eq!(<LenOnly as Decoder<Listed>>::decode(&text).unwrap(), failed);
    }
}
