//! The frame every page sits in: header with navigation, main area, footer.

use leptos::prelude::*;
use leptos_router::components::A;

/// Name and version, compiled in; the footer shows it.
const NAME_AND_VERSION: &str = concat!("KRaft ", env!("CARGO_PKG_VERSION"));

#[component]
pub fn Layout(children: Children) -> impl IntoView {
    view! {
        <header class="site-header">
            <A href="/" attr:class="brand">
                "KRaft"
            </A>
            <nav aria-label="Main">
                <A href="/clusters/new">"Create cluster"</A>
                <A href="/clusters">"Clusters"</A>
                <A href="/account">"Account"</A>
            </nav>
        </header>
        <main>{children()}</main>
        <footer class="site-footer">
            <span>{NAME_AND_VERSION}</span>
        </footer>
    }
}
