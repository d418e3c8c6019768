use leptos::prelude::*;

use crate::accounts::pages::AuthVersion;
use crate::dashboard::{get_dashboard, DashboardView};

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

/// What KRaft is, for someone not signed in: what a learner and a workshop organizer get. The
/// header has the sign-in and sign-up links (as this server's sign-up mode allows).
#[component]
fn Welcome() -> impl IntoView {
    view! {
        <section class="hero">
            <h1>"Your own Kubernetes cluster, in seconds"</h1>
            <p>
                "KRaft gives every user an isolated virtual cluster. Sign up, create a cluster, \
                 download its kubeconfig and start with kubectl."
            </p>
        </section>
        <div class="welcome">
            <section class="card" aria-labelledby="learners-heading">
                <h2 id="learners-heading">"Learning Kubernetes"</h2>
                <ul>
                    <li>"A cluster of your own, isolated from everyone else's: break it and start again."</li>
                    <li>"A kubeconfig as soon as it is ready. kubectl reaches your cluster through KRaft, and you can revoke its token at any time."</li>
                    <li>"Your cluster's logs and metrics live in the browser, and why it is still pending when it is."</li>
                </ul>
            </section>
            <section class="card" aria-labelledby="organizers-heading">
                <h2 id="organizers-heading">"Running a workshop"</h2>
                <ul>
                    <li>"One join link for the room: each attendee signs up and gets a ready cluster in seconds."</li>
                    <li>"A live board of who has joined and whose cluster is up."</li>
                    <li>"The clusters are removed by themselves when the workshop ends."</li>
                </ul>
                <p class="muted small">"Organizing workshops needs an allowance from this server's administrator."</p>
            </section>
        </div>
    }
}
