//! The frame every page sits in: header with navigation (a menu button on narrow screens), main
//! area, footer.

use leptos::either::Either;
use leptos::prelude::*;
use leptos_router::components::A;

use crate::accounts::api::{get_viewer, Logout, Viewer};
use crate::accounts::pages::AuthVersion;
use crate::error::ApiError;
use crate::forms::refresh_viewer_on_success;

/// Name and version, compiled in; the footer shows it.
const NAME_AND_VERSION: &str = concat!("KRaft ", env!("CARGO_PKG_VERSION"));

/// Who is looking, as the header shows it: one request that the menu and the banner share (each
/// asked on its own before, so every page sent the same answer twice).
#[derive(Clone, Copy)]
struct PageViewer {
    viewer: crate::data::Data<Result<Viewer, ApiError>>,
    logout: ServerAction<Logout>,
}

impl PageViewer {
    fn new() -> Self {
        let auth = AuthVersion::get();
        let logout = ServerAction::<Logout>::new();
        refresh_viewer_on_success(logout.value().into(), auth);
        // Asked again after every navigation too: sign-in, sign-out and account deletion all
        // end on another page.
        let path = leptos_router::hooks::use_location().pathname;
        let viewer = crate::data::data(
            move || (auth.get(), logout.version().get(), path.get()),
            |_| get_viewer(),
        );
        Self { viewer, logout }
    }
}

#[component]
pub fn Layout(children: Children) -> impl IntoView {
    let page = PageViewer::new();
    view! {
        <header class="site-header">
            <div class="header-bar">
                <A href="/" attr:class="brand">
                    "KRaft"
                </A>
                <SiteMenu page />
            </div>
            <SimulatedHostBanner viewer=page.viewer />
        </header>
        <main>{children()}</main>
        <footer class="site-footer">
            <span>{NAME_AND_VERSION}</span>
        </footer>
    }
}

/// The navigation and who is signed in. A `<details>` so that narrow screens get a "Menu" button
/// that opens it with no JavaScript at all (before hydration, or with scripts off); wide screens
/// hide the button and always show the contents (style/main.css).
#[component]
fn SiteMenu(page: PageViewer) -> impl IntoView {
    let menu = NodeRef::<leptos::html::Details>::new();
    let summary = NodeRef::<leptos::html::Summary>::new();
    let close = move || {
        if let Some(menu) = menu.get_untracked() {
            let _ = menu.remove_attribute("open");
        }
    };
    // Client-side navigation keeps the document, so the menu would stay open over the new page.
    let path = leptos_router::hooks::use_location().pathname;
    Effect::watch(move || path.get(), move |_, _, _| close(), false);
    let on_keydown = move |event: leptos::ev::KeyboardEvent| {
        let open = menu.get_untracked().is_some_and(|m| m.has_attribute("open"));
        if event.key() == "Escape" && open {
            close();
            if let Some(summary) = summary.get_untracked() {
                let _ = summary.focus();
            }
        }
    };
    view! {
        <details class="menu" node_ref=menu on:keydown=on_keydown>
            <summary node_ref=summary aria-controls="site-menu">
                <span class="menu-icon" aria-hidden="true"></span>
                "Menu"
            </summary>
            <div class="menu-panel" id="site-menu">
                <nav aria-label="Main">
                    <A href="/" exact=true>"Dashboard"</A>
                    <A href="/clusters/new">"Create cluster"</A>
                    <A href="/clusters">"Clusters"</A>
                    <A href="/account">"Account"</A>
                </nav>
                <ViewerMenu page />
            </div>
        </details>
    }
}

/// A wide table's frame: on a narrow screen the table scrolls sideways inside it instead of
/// widening the page. Named and focusable, so keyboard users can scroll it too.
#[component]
pub fn ScrollRegion(#[prop(into)] label: String, children: Children) -> impl IntoView {
    view! {
        <div class="table-scroll" role="region" aria-label=label tabindex="0">
            {children()}
        </div>
    }
}

/// Sign in / sign up links, or who is signed in and a way out.
#[component]
fn ViewerMenu(page: PageViewer) -> impl IntoView {
    let PageViewer { viewer, logout } = page;
    view! {
        <div class="viewer">
            <Transition>
                {move || Suspend::new(async move {
                    match viewer.await.ok().and_then(|v| v.user) {
                        Some(user) => Either::Left(view! {
                            {crate::workshops::pages::organizes(&user).then(|| view! { <A href="/workshops">"Workshops"</A> })}
                            {user.admin.then(|| view! { <A href="/admin/users">"Admin"</A> })}
                            <span class="who">"Signed in as " <strong>{user.username}</strong></span>
                            <ActionForm action=logout attr:class="inline">
                                <button type="submit" class="secondary">"Sign out"</button>
                            </ActionForm>
                        }),
                        None => Either::Right(view! {
                            <A href="/login">"Sign in"</A>
                            <A href="/register" attr:class="button">"Create account"</A>
                        }),
                    }
                })}
            </Transition>
        </div>
    }
}

/// Says plainly when clusters are not real: the zero-config mode runs a simulated host.
#[component]
fn SimulatedHostBanner(viewer: crate::data::Data<Result<Viewer, ApiError>>) -> impl IntoView {
    // A transition: the banner stays put while a navigation asks who is looking again.
    view! {
        <Transition>
            {move || Suspend::new(async move {
                viewer.await.ok().filter(|v| v.simulated_host).map(|_| view! {
                    <p class="banner" role="note">
                        <strong>"Simulated host. "</strong>
                        "No host cluster is configured, so clusters run in KRaft's built-in simulator: \
                         they answer kubectl, but run no workloads. Set KRAFT_HOST_KUBECONFIG to use a real host."
                    </p>
                })
            })}
        </Transition>
    }
}
