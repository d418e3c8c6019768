use crate::helpers::{spawn_app, spawn_app_with, Backend};
use crate::on_both_backends;

async fn home_page_is_rendered_on_the_server(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.get("/").await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let html = response.text().await.unwrap();

    assert!(html.contains("<title>KRaft</title>"), "title missing:\n{html}");
    assert!(html.contains("Your own Kubernetes cluster, in seconds"), "hero missing");
    for (href, label) in
        [("/clusters/new", "Create cluster"), ("/clusters", "Clusters"), ("/account", "Account")]
    {
        assert!(html.contains(&format!("href=\"{href}\"")), "nav link {href} missing");
        assert!(html.contains(label), "nav label {label} missing");
    }
    assert!(
        html.contains(&format!("KRaft {}", env!("CARGO_PKG_VERSION"))),
        "footer version missing"
    );
    // What a newcomer and an organizer get, instead of the first skeleton's server-details button.
    assert!(html.contains("Learning Kubernetes"), "the learners' section is missing");
    assert!(html.contains("Running a workshop"), "the organizers' section is missing");
    assert!(!html.contains("Show server details"), "the skeleton's button is back");
    // The page loads the hydration bundle the site build produces.
    assert!(html.contains("/pkg/kraft.js"), "hydration script missing");
    assert!(html.contains("/pkg/kraft.wasm"), "wasm path missing");
    assert!(html.contains("/pkg/kraft.css"), "stylesheet missing");
}
on_both_backends!(home_page_is_rendered_on_the_server);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_pages_are_not_found() {
    let app = spawn_app(Backend::Sqlite).await;
    let response = app.get("/no/such/page").await;
    assert_eq!(response.status(), 404);
    let html = response.text().await.unwrap();
    assert!(html.contains("There is nothing at this address."), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_in_pages_send_strangers_to_sign_in() {
    let app = spawn_app(Backend::Sqlite).await;
    for path in ["/account", "/clusters", "/clusters/new"] {
        let response =
            app.client.get(app.url(path)).header("Accept", "text/html").send().await.unwrap();
        assert_eq!(response.status(), 302, "{path}");
        assert_eq!(response.headers()["location"], "/login", "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulated_host_is_labelled_in_the_ui() {
    let app = spawn_app(Backend::Sqlite).await;
    // The test host is a hostsim reached through a kubeconfig and declared as one
    // (`--host-is-hostsim`), so the UI says so; a kubeconfig host without the flag is not
    // simulated (`server/src/startup.rs::host`).
    let html = app.get("/").await.text().await.unwrap();
    assert!(html.contains("Simulated host"), "a declared hostsim is not labelled simulated");
}

/// The create form's hints state this installation's limits. They are made for each render as
/// owned strings (they once were leaked to get `&'static str` props: a few bytes lost for good on
/// every visit of the page).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_create_form_states_the_policy_limits() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.max_agents = 2;
        c.max_storage_gi = 7;
    })
    .await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    for _ in 0..2 {
        let page = ada.client.get(format!("{}/clusters/new", ada.address)).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert!(html.contains("0 to 2."), "the agents hint is missing:\n{html}");
        assert!(
            html.contains("1 to 7 GiB, for persistent volumes."),
            "the storage hint is missing"
        );
    }
}
