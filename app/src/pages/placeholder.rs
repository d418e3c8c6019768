use leptos::prelude::*;

/// A page that is not built yet; says so instead of pretending.
#[component]
pub fn Placeholder(title: &'static str) -> impl IntoView {
    view! {
        <h1>{title}</h1>
        <p>"Coming soon."</p>
    }
}
