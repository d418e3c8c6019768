//! The front end's files (`<site root>/pkg`: kraft.js, kraft.wasm, kraft.css), served so a slow
//! link fetches them once: under a name that changes with their content (`/pkg/<version>/…`, the
//! version a hash of the three files taken at start) and cached by browsers for a year as
//! `immutable`; gzip or brotli variants made at build time (`scripts/site.sh`) are sent to
//! browsers that take them. A page from before a deploy may ask for an older version: it gets
//! today's files, never cached, so a rolling update never leaves a page without its code.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use tower::ServiceExt;
use tower_http::services::ServeDir;

/// The files whose content names the version.
const VERSIONED: [&str; 3] = ["kraft.js", "kraft.wasm", "kraft.css"];

/// Where the front end's files are and which version they are.
#[derive(Clone, Debug)]
pub struct Assets {
    dir: PathBuf,
    /// 16 hex digits of the files' hash; `None` without a built front end (tests, a bare binary).
    version: Option<String>,
}

impl Assets {
    /// Reads `<site_root>/pkg` once, at start.
    pub fn load(site_root: &Path) -> Self {
        let dir = site_root.join("pkg");
        let mut hash = Sha256::new();
        let mut found = 0;
        for name in VERSIONED {
            if let Ok(bytes) = std::fs::read(dir.join(name)) {
                hash.update(name.as_bytes());
                hash.update((bytes.len() as u64).to_le_bytes());
                hash.update(&bytes);
                found += 1;
            }
        }
        let version = (found > 0).then(|| hex::encode(&hash.finalize()[..8]));
        Self { dir, version }
    }

    /// The site-relative directory pages name the files under: `pkg/<version>`, or `pkg`.
    pub fn pkg_dir(&self) -> String {
        match &self.version {
            Some(v) => format!("pkg/{v}"),
            None => "pkg".into(),
        }
    }

    async fn serve(&self, file: &str, request: Request, cache: &'static str) -> Response {
        // Only plain file names: nothing reaches outside the directory.
        if file.is_empty() || file.contains(['/', '\\']) || file.starts_with('.') {
            return StatusCode::NOT_FOUND.into_response();
        }
        let (mut parts, body) = request.into_parts();
        parts.uri = match format!("/{file}").parse::<Uri>() {
            Ok(uri) => uri,
            Err(_) => return StatusCode::NOT_FOUND.into_response(),
        };
        let files = ServeDir::new(&self.dir).precompressed_br().precompressed_gzip();
        let Ok(response) = files.oneshot(Request::from_parts(parts, body)).await;
        let mut response = response.map(Body::new);
        if response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED {
            let headers = response.headers_mut();
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
            headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        }
        response
    }
}

/// `GET /pkg/{*path}`: `<version>/<file>` or `<file>`.
pub async fn serve(
    State(assets): State<Assets>,
    UrlPath(path): UrlPath<String>,
    request: Request,
) -> Response {
    const YEAR: &str = "public, max-age=31536000, immutable";
    const REVALIDATE: &str = "no-cache";
    match path.split_once('/') {
        Some((version, file)) if Some(version) == assets.version.as_deref() => {
            assets.serve(file, request, YEAR).await
        }
        // A page from another version (a deploy under way): today's file, not kept.
        Some((_, file)) => assets.serve(file, request, REVALIDATE).await,
        None => assets.serve(&path, request, REVALIDATE).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_follows_the_content() {
        let site = tempfile::tempdir().unwrap();
        assert_eq!(Assets::load(site.path()).pkg_dir(), "pkg");
        let pkg = site.path().join("pkg");
        std::fs::create_dir_all(&pkg).unwrap();
        for name in VERSIONED {
            std::fs::write(pkg.join(name), name).unwrap();
        }
        let first = Assets::load(site.path()).pkg_dir();
        assert!(first.starts_with("pkg/") && first.len() == 4 + 16, "{first}");
        assert_eq!(Assets::load(site.path()).pkg_dir(), first, "the same files, the same name");
        std::fs::write(pkg.join("kraft.css"), "body{}").unwrap();
        assert_ne!(Assets::load(site.path()).pkg_dir(), first, "a change makes a new name");
    }
}
