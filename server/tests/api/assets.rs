//! The front end's files: named by their content, cached for a year, sent precompressed.

use std::io::Write;

use crate::helpers::{spawn_app_with, Backend};

/// A built front end: the three files, gzip and brotli variants of the wasm.
fn site() -> tempfile::TempDir {
    let site = tempfile::tempdir().unwrap();
    let pkg = site.path().join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(pkg.join("kraft.js"), "export default function init() {}").unwrap();
    std::fs::write(pkg.join("kraft.css"), "body { margin: 0 }").unwrap();
    let wasm = vec![0u8; 4096];
    std::fs::write(pkg.join("kraft.wasm"), &wasm).unwrap();
    let mut gz = std::fs::File::create(pkg.join("kraft.wasm.gz")).unwrap();
    gz.write_all(b"pretend-gzip").unwrap();
    std::fs::write(pkg.join("kraft.wasm.br"), b"pretend-brotli").unwrap();
    site
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn front_end_files_are_versioned_immutable_and_precompressed() {
    let site = site();
    let root = site.path().to_path_buf();
    let app = spawn_app_with(Backend::Sqlite, move |c| c.site_root = root).await;

    // Pages name the files under a directory named by their content.
    let page = app.get("/login").await.text().await.unwrap();
    let start = page.find("/pkg/").expect("a /pkg/ link") + 5;
    let version = &page[start..start + 16];
    assert!(version.chars().all(|c| c.is_ascii_hexdigit()), "{version}");
    for file in ["kraft.css", "kraft.js", "kraft.wasm"] {
        assert!(page.contains(&format!("/pkg/{version}/{file}")), "{file} not versioned: {page}");
    }

    let client = reqwest::Client::builder().no_gzip().no_brotli().build().unwrap();
    let get = |path: String, encoding: &'static str| {
        let client = client.clone();
        let url = app.url(&path);
        async move { client.get(url).header("accept-encoding", encoding).send().await.unwrap() }
    };
    // Brotli where the browser takes it, else gzip, else the file itself; cached for a year.
    let br = get(format!("/pkg/{version}/kraft.wasm"), "gzip, deflate, br").await;
    assert_eq!(br.status(), 200);
    assert_eq!(br.headers()["content-encoding"], "br");
    assert_eq!(br.headers()["content-type"], "application/wasm");
    assert_eq!(br.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(br.headers()["vary"], "accept-encoding");
    assert_eq!(br.bytes().await.unwrap().as_ref(), b"pretend-brotli");
    let gz = get(format!("/pkg/{version}/kraft.wasm"), "gzip").await;
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    assert_eq!(gz.bytes().await.unwrap().as_ref(), b"pretend-gzip");
    let plain = get(format!("/pkg/{version}/kraft.wasm"), "identity").await;
    assert!(plain.headers().get("content-encoding").is_none());
    assert_eq!(plain.bytes().await.unwrap().len(), 4096);

    // Another version (a page from before a deploy) gets today's file, never kept.
    let stale = get("/pkg/0123456789abcdef/kraft.css".into(), "identity").await;
    assert_eq!(stale.status(), 200);
    assert_eq!(stale.headers()["cache-control"], "no-cache");
    assert_eq!(stale.text().await.unwrap(), "body { margin: 0 }");
    let unversioned = get("/pkg/kraft.css".into(), "identity").await;
    assert_eq!(unversioned.headers()["cache-control"], "no-cache");

    // Nothing outside the directory, nothing that is not there.
    for path in ["/pkg/x/../../kraft.db", "/pkg/%2e%2e/kraft.db", "/pkg/nope.js"] {
        assert_eq!(get(path.into(), "identity").await.status(), 404, "{path}");
    }
}
