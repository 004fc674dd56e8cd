//! The sandbox's pages. Markup follows x.com's `data-testid`s; every piece of post text is
//! HTML-escaped on the way out, so a post containing `</script>` is shown, not run.

use super::{Post, HANDLE};

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
    format!(
        "<article data-testid=\"tweet\"><div data-testid=\"User-Name\">@{author}</div>\
         <div data-testid=\"tweetText\">{text}</div>\
         <a href=\"/{author}/status/{id}\"><time datetime=\"{created}\">{created}</time></a></article>",
        author = escape(&post.author),
        text = escape(&post.text),
        id = escape(&post.id),
        created = escape(&post.created_at),
    )
}

fn page(title: &str, body: &str, extra: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title>{STYLE}</head>\
         <body>{extra}{body}</body></html>"
    )
}

pub fn home(posts: &[Post], extra: &str) -> String {
    let timeline: String = posts.iter().rev().take(20).map(article).collect();
    let body = format!(
        "<nav><a data-testid=\"AppTabBar_Home_Link\" href=\"/home\">Home</a> \
         <a data-testid=\"AppTabBar_Profile_Link\" href=\"/{HANDLE}\">Profile</a> \
         <a data-testid=\"SideNav_NewTweet_Button\" href=\"/home\">Post</a></nav>\
         <div contenteditable=\"true\" role=\"textbox\" data-testid=\"tweetTextarea_0\" id=\"composer\"></div>\
         <button data-testid=\"tweetButtonInline\" id=\"post\">Post</button><p id=\"status\" role=\"status\"></p>\
         {COMPOSER_SCRIPT}<script>document.getElementById('post').addEventListener('click', () =>\
          createPost(document.getElementById('composer'), null, document.getElementById('status')));</script>\
         <section aria-label=\"Timeline\">{timeline}</section>"
    );
    page("Home / Sandbox", &body, extra)
}

pub fn status(post: &Post, replies: &[Post], extra: &str) -> String {
    let replies: String = replies.iter().map(article).collect();
    let body = format!(
        "<nav><a data-testid=\"SideNav_NewTweet_Button\" href=\"/home\">Home</a></nav>\
         {post}<button data-testid=\"reply\" id=\"reply\">Reply</button>\
         <div role=\"dialog\" id=\"dialog\" hidden>\
         <div contenteditable=\"true\" role=\"textbox\" data-testid=\"tweetTextarea_0\" id=\"reply-box\"></div>\
         <button data-testid=\"tweetButton\" id=\"send\">Reply</button><p id=\"status\" role=\"status\"></p></div>\
         {COMPOSER_SCRIPT}<script>\
         document.getElementById('reply').addEventListener('click', () => {{ document.getElementById('dialog').hidden = false; }});\
         document.getElementById('send').addEventListener('click', () =>\
          createPost(document.getElementById('reply-box'), document.getElementById('send').dataset.target, document.getElementById('status')));\
         </script><section aria-label=\"Replies\">{replies}</section>",
        post = article(post),
    )
    .replace("id=\"send\"", &format!("id=\"send\" data-target=\"{}\"", escape(&post.id)));
    page("Post / Sandbox", &body, extra)
}

pub fn profile(handle: &str, posts: &[Post], extra: &str) -> String {
    let items: String = posts.iter().rev().take(50).map(article).collect();
    let body = format!(
        "<nav><a data-testid=\"SideNav_NewTweet_Button\" href=\"/home\">Home</a></nav>\
         <h1>@{}</h1><section aria-label=\"Posts\">{items}</section>",
        escape(handle)
    );
    page("Profile / Sandbox", &body, extra)
}

pub fn login(extra: &str) -> String {
    let body = "<h1>Sign in to the sandbox</h1><form method=\"post\" action=\"/i/flow/login\">\
        <input name=\"username\" autocomplete=\"username\" data-testid=\"username\" value=\"demo\">\
        <button type=\"submit\" data-testid=\"LoginForm_Login_Button\">Log in</button></form>";
    page("Log in / Sandbox", body, extra)
}

pub fn not_found() -> String {
    page(
        "Not found / Sandbox",
        "<h1>This post doesn't exist</h1>",
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
        let html = home(&[post], "");
        assert!(!html.contains("<script>alert(1)"));
        assert!(html.contains(
            "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;"
        ));
    }
}
