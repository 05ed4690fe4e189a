// The console walk in Chromium, run by tests/console.rs with one JSON argument (the
// server's address, tokens, the seeded cases, where screenshots go). Every wait is for a
// condition (a navigation, an element) with Playwright's own deadline; nothing sleeps.
// Exits non-zero with the step that failed.
import { chromium } from "playwright-core";
import path from "node:path";

const cfg = JSON.parse(process.argv[2]);
const desktop = { width: 1280, height: 900 };
const phone = { width: 390, height: 844 };

function check(condition, message) {
  if (!condition) throw new Error(message);
}

const browser = await chromium.launch({
  executablePath: cfg.chromium,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

/// A fresh browser context (its own cookies) signed in with `token`.
async function signedIn(token, viewport = desktop, javaScriptEnabled = true) {
  const context = await browser.newContext({ viewport, baseURL: cfg.base, javaScriptEnabled });
  const page = await context.newPage();
  page.setDefaultTimeout(30000);
  const problems = [];
  page.on("dialog", (d) => { problems.push(`a dialog opened: ${d.message()}`); d.dismiss(); });
  page.on("console", (m) => { if (m.type() === "error") problems.push(`console error: ${m.text()}`); });
  // Every sub-resource (style, script, image) loads; a page's own status is checked where it matters.
  page.on("response", (r) => {
    if (r.request().resourceType() !== "document" && r.status() >= 400) problems.push(`${r.status()} for ${r.url()}`);
  });
  page.problems = problems;
  await page.goto("/console/signin");
  await page.fill("#token", token);
  const [answer] = await Promise.all([
    page.waitForNavigation(),
    page.click("form[action='/console/signin'] button"),
  ]);
  check(new URL(page.url()).pathname === "/console/inbox",
    `sign-in ended at ${page.url()} (${answer && answer.status()}): ${(await page.textContent("main")).trim()}`);
  return page;
}

async function shot(page, name, viewport) {
  if (viewport) await page.setViewportSize(viewport);
  await page.screenshot({ path: path.join(cfg.screenshots, name), fullPage: true });
}

const step = (name) => console.log(`step: ${name}`);

try {
  const c = cfg.cases;
  // 1. Sign in as a reviewer: the inbox lists the seeded cases.
  step("inbox lists the seeded cases");
  const reviewer = await signedIn(cfg.tokens.reviewer);
  for (const id of Object.values(c)) {
    check(await reviewer.locator(`tr[data-case="${id}"]`).count() === 1, `the inbox does not list ${id}`);
  }
  await shot(reviewer, "inbox-desktop.png");
  await shot(reviewer, "inbox-phone.png", phone);
  await reviewer.setViewportSize(desktop);

  // 2. Open one: its page images load; approve it.
  step("open a case and see its page images");
  await Promise.all([reviewer.waitForURL(`**/console/cases/${c.S1}`), reviewer.click(`tr[data-case="${c.S1}"] a.student`)]);
  const images = reviewer.locator("img.page-image");
  check(await images.count() >= 2, "the agreement's page images are not shown");
  await images.first().scrollIntoViewIfNeeded();
  await reviewer.waitForFunction(() => [...document.querySelectorAll("img.page-image")]
    .every((i) => i.complete && i.naturalWidth > 0));
  check(await reviewer.locator("a", { hasText: "查看原图" }).count() >= 2, "no 查看原图 links");
  await shot(reviewer, "case-desktop.png");
  await shot(reviewer, "case-phone.png", phone);
  await reviewer.setViewportSize(desktop);

  step("approve it");
  const stateBefore = await reviewer.textContent("#state");
  await Promise.all([reviewer.waitForURL(/done=approve/), reviewer.click("button[name=do][value=approve]")]);
  const stateAfter = await reviewer.textContent("#state");
  check(stateAfter !== stateBefore, `the state did not change: ${stateAfter}`);
  check((await reviewer.textContent(".notice")).includes("已执行"), "no notice of the approval");
  await Promise.all([reviewer.waitForURL("**/console/inbox"), reviewer.click("nav a[href='/console/inbox']")]);
  check(await reviewer.locator(`tr[data-case="${c.S1}"]`).count() === 0, "the approved case is still in the inbox");

  // 3. The student named <script>: text, not markup; return the case with a reason.
  step("a student named <script> shows as text");
  await reviewer.goto(`/console/cases/${c.S5}`);
  check((await reviewer.textContent("h1")).includes(cfg.script_name), "the name is not shown as text");
  check(await reviewer.locator("main script").count() === 0, "a script element came from data");
  step("return with a reason");
  await reviewer.fill("form.action textarea[name='f.review.reason']", "请补充单位盖章页（浏览器）");
  await Promise.all([reviewer.waitForURL(/done=return/), reviewer.click("button[name=do][value=return]")]);

  // 4. Bulk approve three.
  step("bulk approve three");
  await reviewer.goto("/console/inbox");
  for (const s of ["S2", "S3", "S4"]) await reviewer.check(`tr[data-case="${c[s]}"] input[name=case]`);
  await Promise.all([reviewer.waitForURL("**/console/reviews/bulk"), reviewer.click("#bulk button[name=transition][value=approve]")]);
  check((await reviewer.textContent(".done-count")).trim() === "3", "bulk approval did not do three");
  await shot(reviewer, "bulk-desktop.png");
  await reviewer.goto("/console/inbox");
  for (const s of ["S2", "S3", "S4"]) {
    check(await reviewer.locator(`tr[data-case="${c[s]}"]`).count() === 0, `${s} still waits`);
  }
  await shot(reviewer, "inbox-after-desktop.png");
  check(reviewer.problems.length === 0, reviewer.problems.join("; "));

  // 5. A reviewer of another school: 403 on the case's address.
  step("a reviewer of another school gets 403");
  const other = await signedIn(cfg.tokens.other_reviewer);
  const denied = await other.goto(`/console/cases/${c.S2}`);
  check(denied.status() === 403, `another school's reviewer got ${denied.status()}`);
  check(!(await other.content()).includes("王芳"), "the forbidden page names the student");

  // 6. The student sees the reason the case was returned.
  step("the student's view shows the reason (with JavaScript off)");
  const student = await signedIn(cfg.tokens.student_s5, phone, false);
  await student.goto(`/console/cases/${c.S5}`);
  check((await student.textContent("main")).includes("请补充单位盖章页（浏览器）"), "the student does not see the reason");
  await shot(student, "student-case-phone.png");

  // 7. The verify page, opened from the QR code's address on a phone.
  step("the verify page shows the agreement's facts");
  const context = await browser.newContext({ viewport: phone });
  const qr = await context.newPage();
  const answer = await qr.goto(cfg.verify_url);
  check(answer.status() === 200, `verify answered ${answer.status()}`);
  const text = await qr.textContent("main");
  for (const fact of ["李明", "龙江软件有限公司", "有效"]) check(text.includes(fact), `the verify page lacks ${fact}: ${text}`);
  await shot(qr, "verify-phone.png");

  // 8. Statistics for the school admin, with the server's SVG charts.
  step("statistics");
  const schoolAdmin = await signedIn(cfg.tokens.school_admin);
  await schoolAdmin.goto("/console/statistics");
  check(await schoolAdmin.locator("svg.chart").count() === 2, "the charts are missing");
  await shot(schoolAdmin, "statistics-desktop.png");
  await shot(schoolAdmin, "statistics-phone.png", phone);

  // 9. A platform admin publishes a definition with an error: the error with its line.
  step("publishing a broken definition shows the error's line");
  const admin = await signedIn(cfg.tokens.admin);
  await admin.goto("/console/definitions/online_signing");
  const source = await admin.inputValue("textarea[name=source]");
  const broken = source + '\n[[transitions]]\nname = "console_broken"\ntitle = "坏 / broken"\nfrom = ["nowhere_state"]\nto = "approved"\nby = ["school_reviewer"]\n';
  await admin.fill("textarea[name=source]", broken);
  await admin.click("form[action='/console/definitions/online_signing'] button");
  await admin.waitForSelector(".check-problems li");
  const problems = await admin.locator(".check-problems li").allTextContents();
  const lines = broken.split("\n");
  const pointing = problems.filter((p) => {
    const m = p.match(/line (\d+)/);
    return m && lines[Number(m[1]) - 1] !== undefined && lines[Number(m[1]) - 1].includes("nowhere_state");
  });
  check(pointing.length > 0, `no problem names the line of nowhere_state: ${problems.join(" | ")}`);
  await admin.screenshot({ path: path.join(cfg.screenshots, "definition-error-desktop.png") });
  await admin.locator(".graph-wrap").screenshot({ path: path.join(cfg.screenshots, "definition-graph.png") });
  await admin.goto("/console/queues");
  await shot(admin, "queues-desktop.png");
  await admin.goto("/console/mail");
  await shot(admin, "mail-desktop.png");
  console.log("ok: the console walk passed");
} catch (e) {
  console.error(`failed: ${e.stack || e}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
