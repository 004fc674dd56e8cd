//! The sandbox's pages. Markup follows x.com's `data-testid`s; every piece of post text is
//! HTML-escaped on the way out, so a post containing `</script>` is shown, not run.

use super::{Post, TimelinePage, HANDLE};

/// Opens three popups as the page loads (fault `popups`).
pub const POPUPS: &str =
    "<script>for (let i = 0; i < 3; i++) window.open('/home', '_blank');</script>";
/// A script that never returns (fault `script_hang`).
pub const SCRIPT_HANG: &str = "<script>while (true) {}</script>";

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "<style>body{font-family:sans-serif;max-width:600px;margin:2em auto}\
[data-testid=tweetTextarea_0]{border:1px solid #999;min-height:3em;padding:.5em;white-space:pre-wrap}\
article{border-bottom:1px solid #ddd;padding:.5em 0}[data-testid=tweetText]{white-space:pre-wrap}\
[role=dialog]{border:2px solid #1d9bf0;padding:1em;margin:1em 0}</style>";

/// The composer's script: reads the composer, sends the create-post request, reports the result.
/// The request body is built with JSON.stringify from the DOM, never by splicing text into code.
const COMPOSER_SCRIPT: &str = r#"<script>
async function createPost(box, inReplyTo, status) {
  const text = box.innerText.replace(/\u00a0/g, ' ').replace(/\n$/, '');
  const response = await fetch('/i/api/graphql/sandbox/CreateTweet', {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ text: text, in_reply_to: inReplyTo })
  });
  status.textContent = response.ok ? 'Your post was sent.' : ('Something went wrong: HTTP ' + response.status);
  if (response.ok) box.textContent = '';
}
</script>"#;

fn article(post: &Post) -> String {
    article_in(post, "")
}

/// A post, with `context` above it (x.com's `socialContext`: "Pinned", "… reposted").
fn article_in(post: &Post, context: &str) -> String {
    let context = if context.is_empty() {
        String::new()
    } else {
        format!(
            "<div data-testid=\"socialContext\">{}</div>",
            escape(context)
        )
    };
    // As on x.com, the post's time is inside the link to its status page.
    format!(
        "<article data-testid=\"tweet\" role=\"article\">{context}<div data-testid=\"User-Name\">@{author} \
         <a href=\"/{author}/status/{id}\"><time datetime=\"{created}\">{created}</time></a></div>\
         <div data-testid=\"tweetText\">{text}</div></article>",
        author = escape(&post.author),
        text = escape(&post.text),
        id = escape(&post.id),
        created = escape(&post.created_at),
    )
}

/// The side bar of every logged-in page: who is logged in, as x.com shows it (the profile link
/// and the account switcher).
fn side_bar(user: &str) -> String {
    let user = escape(user);
    format!(
        "<header role=\"banner\"><nav aria-label=\"Primary\" role=\"navigation\">\
         <a href=\"/home\" aria-label=\"Home\" role=\"link\" data-testid=\"AppTabBar_Home_Link\">Home</a> \
         <a href=\"/{user}\" aria-label=\"Profile\" role=\"link\" data-testid=\"AppTabBar_Profile_Link\">Profile</a> \
         <a href=\"/home\" aria-label=\"Post\" role=\"link\" data-testid=\"SideNav_NewTweet_Button\">Post</a></nav>\
         <button aria-label=\"Account menu\" data-testid=\"SideNav_AccountSwitcher_Button\"><span>@{user}</span></button>\
         </header>"
    )
}

/// Says that a list holds everything there is (the last timeline page, a status page's replies).
fn end_marker(what: &str) -> String {
    format!("<div data-testid=\"TimelineEnd\">{what}</div>")
}

fn page(title: &str, body: &str, extra: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title>{STYLE}</head>\
         <body>{extra}{body}</body></html>"
    )
}

pub fn home(user: &str, posts: &[Post], extra: &str) -> String {
    let timeline: String = posts.iter().rev().take(20).map(article).collect();
    let body = format!(
        "{side_bar}\
         <div contenteditable=\"true\" role=\"textbox\" data-testid=\"tweetTextarea_0\" id=\"composer\"></div>\
         <button data-testid=\"tweetButtonInline\" id=\"post\">Post</button><p id=\"status\" role=\"status\"></p>\
         {COMPOSER_SCRIPT}<script>document.getElementById('post').addEventListener('click', () =>\
          createPost(document.getElementById('composer'), null, document.getElementById('status')));</script>\
         <section aria-label=\"Timeline: Your Home Timeline\">{timeline}</section>",
        side_bar = side_bar(user),
    );
    page("Home / Sandbox", &body, extra)
}

pub fn status(user: &str, post: &Post, replies: &[Post], extra: &str) -> String {
    let count = replies.len();
    let replies: String = replies.iter().map(article).collect();
    let body = format!(
        "{side_bar}\
         {post}<button data-testid=\"reply\" id=\"reply\">Reply</button>\
         <div role=\"dialog\" id=\"dialog\" hidden>\
         <div contenteditable=\"true\" role=\"textbox\" data-testid=\"tweetTextarea_0\" id=\"reply-box\"></div>\
         <button data-testid=\"tweetButton\" id=\"send\">Reply</button><p id=\"status\" role=\"status\"></p></div>\
         {COMPOSER_SCRIPT}<script>\
         document.getElementById('reply').addEventListener('click', () => {{ document.getElementById('dialog').hidden = false; }});\
         document.getElementById('send').addEventListener('click', () =>\
          createPost(document.getElementById('reply-box'), document.getElementById('send').dataset.target, document.getElementById('status')));\
         </script><section aria-label=\"Timeline: Conversation\">{replies}{end}</section>",
        side_bar = side_bar(user),
        post = article(post),
        end = end_marker(&format!("All {count} replies are shown.")),
    )
    .replace("id=\"send\"", &format!("id=\"send\" data-target=\"{}\"", escape(&post.id)));
    page("Post / Sandbox", &body, extra)
}

/// Loads the next older page when the reader scrolls near the cursor, as x.com's timelines do,
/// and keeps only the last [`super::WINDOW`] items loaded, dropping the ones scrolled past.
const TIMELINE_SCRIPT: &str = r#"<script>
(function () {
  const timeline = document.getElementById('timeline');
  let loading = false;
  async function more() {
    const cursor = document.querySelector('#cursor [data-testid="ShowMoreCursor"]');
    if (!cursor || loading || cursor.getBoundingClientRect().top > 2 * window.innerHeight) return;
    loading = true;
    try {
      const answer = await fetch(cursor.href);
      const next = new DOMParser().parseFromString(await answer.text(), 'text/html');
      for (const item of next.querySelectorAll('#timeline > article')) {
        timeline.appendChild(document.adoptNode(item));
      }
      const items = timeline.querySelectorAll(':scope > article');
      for (let i = 0; i < items.length - WINDOW; i++) items[i].remove();
      document.getElementById('cursor').replaceWith(document.adoptNode(next.getElementById('cursor')));
    } finally {
      loading = false;
    }
  }
  window.addEventListener('scroll', more);
})();
</script>"#;

/// One page of `handle`'s timeline, seen by `user`.
pub fn profile(user: &str, handle: &str, timeline: &TimelinePage, extra: &str) -> String {
    let handle = escape(handle);
    let pinned = timeline
        .pinned
        .as_ref()
        .map(|post| article_in(post, "Pinned"))
        .unwrap_or_default();
    let items: String = pinned + &timeline.posts.iter().map(article).collect::<String>();
    let cursor = match (&timeline.next, timeline.end) {
        (Some(next), _) => format!(
            "<a data-testid=\"ShowMoreCursor\" role=\"link\" href=\"/{handle}?cursor={}\">Show more</a>",
            escape(next)
        ),
        (None, true) if timeline.posts.is_empty() => format!(
            "<div data-testid=\"emptyState\">@{handle} hasn’t posted</div>{}",
            end_marker("Nothing older.")
        ),
        (None, true) => end_marker(&format!("Nothing older: this is @{handle}’s first post.")),
        (None, false) => String::new(),
    };
    let body = format!(
        "{side_bar}<h1>@{handle}</h1>\
         <section aria-label=\"Timeline: @{handle}’s posts\" id=\"timeline\">{items}</section>\
         <div id=\"cursor\">{cursor}</div>{script}",
        side_bar = side_bar(user),
        script = TIMELINE_SCRIPT.replace("WINDOW", &super::WINDOW.to_string()),
    );
    page("Profile / Sandbox", &body, extra)
}

/// The login form: the user name decides whose session it is.
pub fn login(error: Option<&str>, extra: &str) -> String {
    let error = error
        .map(|e| format!("<p role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default();
    let body = format!(
        "<h1>Sign in to the sandbox</h1>{error}<form method=\"post\" action=\"/i/flow/login\">\
        <input name=\"username\" autocomplete=\"username\" data-testid=\"username\" value=\"{HANDLE}\">\
        <button type=\"submit\" data-testid=\"LoginForm_Login_Button\">Log in</button></form>"
    );
    page("Log in / Sandbox", &body, extra)
}

pub fn not_found(user: &str) -> String {
    page(
        "Not found / Sandbox",
        &format!("{}<h1>This post doesn't exist</h1>", side_bar(user)),
        "",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_text_is_escaped_never_run() {
        let post = Post {
            id: "1".into(),
            text: "</script><script>alert(1)</script> & \"quotes\"".into(),
            in_reply_to: None,
            created_at: "t".into(),
            author: "demo".into(),
        };
        let html = home("demo", &[post], "");
        assert!(!html.contains("<script>alert(1)"));
        assert!(html.contains(
            "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;"
        ));
    }
}
