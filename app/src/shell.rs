use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    path, SsrMode,
};

use crate::accounts::pages::{AccountPage, AuthVersion, GoodbyePage, LoginPage, RegisterPage};

use crate::admin::AdminUsersPage;
use crate::clusters::pages::{AdminClustersPage, ClusterPage, ClustersPage, CreateClusterPage};
use crate::layout::Layout;
use crate::pages::{home::HomePage, not_found::NotFound};
use crate::workshops::pages::{JoinCodePage, JoinPage, WorkshopBoardPage, WorkshopsPage};

/// The HTML document the server renders around the application.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    crate::api::ssr::set_content_security_policy();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <link rel="icon" type="image/svg+xml" href="/favicon.svg" />
                // Under the versioned directory the server serves as immutable (server/src/assets.rs).
                <link rel="stylesheet" id="kraft" href=format!("/{}/kraft.css", options.site_pkg_dir) />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    AuthVersion::provide();
    // Effects run once the page is hydrated: `<html data-hydrated>` tells tests and benchmarks
    // (end2end/bench/slow-link.mjs) that the page is interactive.
    #[cfg(feature = "hydrate")]
    Effect::new(|_| {
        if let Some(root) = document().document_element() {
            let _ = root.set_attribute("data-hydrated", "");
        }
    });

    view! {
        <Title text="KRaft" />
        <Router>
            <Layout>
                <Routes fallback=NotFound>
                    // Pages render fully before the response goes out (SsrMode::Async), so what they do
                    // to the session (reading a form's flash, last-seen) is saved with the response.
                    <Route path=path!("") view=HomePage ssr=SsrMode::Async />
                    <Route path=path!("register") view=RegisterPage ssr=SsrMode::Async />
                    <Route path=path!("login") view=LoginPage ssr=SsrMode::Async />
                    <Route path=path!("account") view=AccountPage ssr=SsrMode::Async />
                    <Route path=path!("goodbye") view=GoodbyePage ssr=SsrMode::Async />
                    <Route path=path!("clusters/new") view=CreateClusterPage ssr=SsrMode::Async />
                    <Route path=path!("clusters/:id") view=ClusterPage ssr=SsrMode::Async />
                    <Route path=path!("clusters") view=ClustersPage ssr=SsrMode::Async />
                    <Route path=path!("admin/clusters") view=AdminClustersPage ssr=SsrMode::Async />
                    <Route path=path!("admin/users") view=AdminUsersPage ssr=SsrMode::Async />
                    <Route path=path!("workshops") view=WorkshopsPage ssr=SsrMode::Async />
                    <Route path=path!("workshops/:id") view=WorkshopBoardPage ssr=SsrMode::Async />
                    <Route path=path!("join") view=JoinCodePage ssr=SsrMode::Async />
                    <Route path=path!("join/:key") view=JoinPage ssr=SsrMode::Async />
                </Routes>
            </Layout>
        </Router>
    }
}
