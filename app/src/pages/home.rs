use leptos::prelude::*;

use crate::accounts::pages::AuthVersion;
use crate::dashboard::{get_dashboard, DashboardView};
use crate::system::{system_info, About};

/// Home: the dashboard when signed in, otherwise what KRaft is.
#[component]
pub fn HomePage() -> impl IntoView {
    let auth = AuthVersion::get();
    let dashboard = crate::data::data(move || auth.get(), |_| get_dashboard());
    view! {
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match dashboard.await {
                    Ok(Some(dashboard)) => view! { <DashboardView dashboard /> }.into_any(),
                    Ok(None) => view! { <Welcome /> }.into_any(),
                    Err(error) => view! {
                        <p class="alert error" role="alert">{error.to_string()}</p>
                        <Welcome />
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Welcome() -> impl IntoView {
    let about = Action::new(|_: &()| system_info());
    // Effects run only in the browser: the button turns on once hydration has wired it up,
    // so a click is never lost on a page that is not interactive yet.
    let interactive = RwSignal::new(false);
    Effect::new(move |_| interactive.set(true));

    view! {
        <section class="hero">
            <h1>"Your own Kubernetes cluster, in seconds"</h1>
            <p>
                "KRaft gives every user an isolated virtual cluster. Sign up, create a cluster, \
                 download its kubeconfig and start with kubectl."
            </p>
        </section>
        <section class="about" aria-labelledby="about-heading">
            <h2 id="about-heading">"About this server"</h2>
            <button
                type="button"
                disabled=move || !interactive.get()
                on:click=move |_| {
                    about.dispatch(());
                }
            >
                "Show server details"
            </button>
            <div role="status" aria-live="polite">
                {move || match about.value().get() {
                    None if about.pending().get() => view! { <p>"Asking the server…"</p> }.into_any(),
                    None => ().into_any(),
                    Some(Ok(info)) => view! { <ServerDetails info /> }.into_any(),
                    Some(Err(error)) => {
                        view! { <p class="error">{error.to_string()}</p> }.into_any()
                    }
                }}
            </div>
        </section>
    }
}

#[component]
fn ServerDetails(info: About) -> impl IntoView {
    view! {
        <dl class="details" aria-label="Server details">
            <dt>"Version"</dt>
            <dd>{info.version}</dd>
            <dt>"Database"</dt>
            <dd>{info.database}</dd>
        </dl>
    }
}
