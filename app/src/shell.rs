use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    path,
};

use crate::layout::Layout;
use crate::pages::{home::HomePage, not_found::NotFound, placeholder::Placeholder};

/// The HTML document the server renders around the application.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <link rel="icon" type="image/svg+xml" href="/favicon.svg" />
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

    view! {
        <Stylesheet id="kraft" href="/pkg/kraft.css" />
        <Title text="KRaft" />
        <Router>
            <Layout>
                <Routes fallback=NotFound>
                    <Route path=path!("") view=HomePage />
                    <Route
                        path=path!("clusters/new")
                        view=|| view! { <Placeholder title="Create cluster" /> }
                    />
                    <Route path=path!("clusters") view=|| view! { <Placeholder title="Clusters" /> } />
                    <Route path=path!("account") view=|| view! { <Placeholder title="Account" /> } />
                </Routes>
            </Layout>
        </Router>
    }
}
