//! The sandbox's pages. Markup follows x.com's `data-testid`s; every piece of post text is
//! HTML-escaped on the way out, so a post containing `</script>` is shown, not run.

use super::{Post, TimelinePage, HANDLE};

/// Opens three popups as the page loads (fault `popups`).
pub const POPUPS: &str =
    "<script>for (let i = 0; i < 3; i++) window.open('/home', '_blank');</script>";
/// Composers that add a `~` to any text containing `GARBLE` (fault `garble`).
pub const GARBLE: &str = "<script>document.addEventListener('input', e => { const t = e.target; \
    if (t.isContentEditable && t.textContent.includes('GARBLE') && !t.textContent.endsWith('~')) \
    t.append('~'); }, true);</script>";
/// A script that never returns (fault `script_hang`).
pub const SCRIPT_HANG: &str = "<script>while (true) {}</script>";

pub use crate::quote::html as escape;

const STYLE: &str = "<style>body{font-family:sans-serif;max-width:600px;margin:2em auto}\
[data-testid=tweetTextarea_0]{border:1px solid #999;min-height:3em;padding:.5em;white-space:pre-wrap}\
article{border-bottom:1px solid #ddd;padding:.5em 0}[data-testid=tweetText]{white-space:pre-wrap}\
[role=dialog]{border:2px solid #1d9bf0;padding:1em;margin:1em 0}</style>";

/// The composer's script: reads the composer, sends the create-post request, reads its answer and
/// reports the result.
/// The request body is built with JSON.stringify from the DOM, never by splicing text into code.
/// The text is read as an editor holds it, each paragraph a line (`src/sites/text.js`, the model
/// the engine reads back with), not as `innerText`, which counts an empty paragraph twice.
fn composer_script() -> String {
    r#"<script>
const readText = READ_TEXT;
async function createPost(box, inReplyTo, status) {
  const text = readText.call(box, null).replace(/\u00a0/g, ' ');
  const response = await fetch('/i/api/graphql/sandbox/CreateTweet', {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ text: text, in_reply_to: inReplyTo })
  });
  // The page reads its answer, as x.com does (it shows the new post): a body nobody reads
  // keeps the request open in the browser's eyes.
  const answer = await response.text().catch(() => '');
  status.textContent = response.ok ? 'Your post was sent.' : ('Something went wrong: HTTP ' + response.status);
  status.dataset.answered = String(answer.length);
  if (response.ok) box.textContent = '';
}
</script>"#
        .replace("READ_TEXT", crate::sites::text::READ_TEXT_JS)
}

/// How much of a link's address is shown before `…`, as x.com shortens them.
const LINK_SHOWN: usize = 25;

/// A post's text as x.com shows it: escaped, and every `http(s)://` link rewritten to a t.co-style
/// address whose text is the address without its scheme and `www.`, shortened with `…`; the
/// hidden parts stay in the link, not displayed, as x.com keeps them.
pub fn rich_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    let mut rest = text;
    while let Some((before, link, after)) = next_link(rest) {
        out.push_str(&escape(before));
        let shown_from = ["https://www.", "http://www.", "https://", "http://"]
            .iter()
            .find(|scheme| link.starts_with(*scheme))
            .map_or(0, |scheme| scheme.len());
        let (hidden, bare) = link.split_at(shown_from);
        let cut = bare
            .char_indices()
            .nth(LINK_SHOWN)
            .map_or(bare.len(), |(at, _)| at);
        let (shown, tail) = bare.split_at(cut);
        let ellipsis = if tail.is_empty() {
            ""
        } else {
            "<span aria-hidden=\"true\">…</span>"
        };
        out.push_str(&format!(
            "<a href=\"https://t.co/{code}\" rel=\"noopener noreferrer nofollow\" target=\"_blank\" role=\"link\">\
             <span aria-hidden=\"true\" style=\"display:none\">{hidden}</span>{shown}\
             <span aria-hidden=\"true\" style=\"display:none\">{tail}</span>{ellipsis}</a>",
            code = short_code(link),
            hidden = escape(hidden),
            shown = escape(shown),
            tail = escape(tail),
        ));
        rest = after;
    }
    out.push_str(&escape(rest));
    out
}

/// The next link in `text`: what comes before it, the link, and the rest. A link starts with
/// `http://` or `https://` at the start of a word and runs to the next space, less trailing
/// punctuation (`see https://a.com.` links `https://a.com`).
fn next_link(text: &str) -> Option<(&str, &str, &str)> {
    let mut from = 0;
    loop {
        let at = from + text[from..].find("http")?;
        let word_start = text[..at]
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || "([<\"'".contains(c));
        let rest = &text[at..];
        let scheme = rest.starts_with("https://") || rest.starts_with("http://");
        if word_start && scheme {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let link = rest[..end].trim_end_matches(|c: char| ".,;:!?)]}>'\"".contains(c));
            let after_scheme = link.find("://").map_or(0, |i| i + 3);
            if link.len() > after_scheme {
                return Some((&text[..at], link, &rest[link.len()..]));
            }
        }
        from = at + "http".len();
    }
}

/// A stable t.co-style code for an address (FNV-1a, in base 62).
fn short_code(link: &str) -> String {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in link.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (0..10)
        .map(|_| {
            let digit = DIGITS[(hash % 62) as usize] as char;
            hash /= 62;
            digit
        })
        .collect()
}

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
         <div data-testid=\"tweetText\" lang=\"en\" dir=\"auto\">{text}</div></article>",
        author = escape(&post.author),
        text = rich_text(&post.text),
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
         {composer_script}<script>document.getElementById('post').addEventListener('click', () =>\
          createPost(document.getElementById('composer'), null, document.getElementById('status')));</script>\
         <section aria-label=\"Timeline: Your Home Timeline\">{timeline}</section>",
        side_bar = side_bar(user),
        composer_script = composer_script(),
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
         {composer_script}<script>\
         document.getElementById('reply').addEventListener('click', () => {{ document.getElementById('dialog').hidden = false; }});\
         document.getElementById('send').addEventListener('click', () =>\
          createPost(document.getElementById('reply-box'), document.getElementById('send').dataset.target, document.getElementById('status')));\
         </script><section aria-label=\"Timeline: Conversation\">{replies}{end}</section>",
        side_bar = side_bar(user),
        composer_script = composer_script(),
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

    #[test]
    fn links_are_shown_rewritten_as_x_com_shows_them() {
        let html = rich_text(
            "see https://www.github.com/rust-lang/rust/issues/12345, and <http://a.io>. nothttps://x",
        );
        let code = short_code("https://www.github.com/rust-lang/rust/issues/12345");
        assert!(
            html.starts_with(&format!(
                "see <a href=\"https://t.co/{code}\" rel=\"noopener noreferrer nofollow\" target=\"_blank\" role=\"link\">\
                 <span aria-hidden=\"true\" style=\"display:none\">https://www.</span>github.com/rust-lang/rust\
                 <span aria-hidden=\"true\" style=\"display:none\">/issues/12345</span><span aria-hidden=\"true\">…</span></a>, and &lt;"
            )),
            "{html}"
        );
        assert!(
            html.contains(">a.io<"),
            "a short address is shown whole: {html}"
        );
        assert!(
            html.ends_with("&gt;. nothttps://x"),
            "only words that start with a scheme: {html}"
        );
        assert_eq!(rich_text("no links <b>"), "no links &lt;b&gt;");
        assert_eq!(short_code("https://a.io").len(), 10);
        assert_ne!(short_code("https://a.io"), short_code("https://b.io"));
    }
}
