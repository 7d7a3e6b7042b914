// Runs before main.js and imports nothing from the runtime, so it can say what main.js cannot: main.js imports the
// MediaPipe runtime statically, and when the server has not got it installed (the vendor files answer 503)
// main.js never runs and the page would wait for ever. It asks /api/health and, when the runtime is missing (or
// main.js fails to load for any other reason), shows the server's words and puts the page in its error state.
const mainScript = document.querySelector('script[src="/static/js/main.js"]');
let runtimeProblem = null;

function showFatal(message) {
  const el = document.getElementById('error');
  el.textContent = message;
  el.hidden = false;
  document.body.dataset.fatal = 'runtime';  // sticky: main.js keeps the page in its error state
  document.body.dataset.state = 'error';
  for (const id of ['load', 'send', 'prompt']) {
    const control = document.getElementById(id);
    if (control) control.disabled = true;
  }
}

mainScript?.addEventListener('error', () => {
  showFatal(runtimeProblem || 'The page script failed to load; see the browser console and the server log.');
});

fetch('/api/health', { cache: 'no-store' })
  .then((response) => response.json())
  .then((health) => {
    if (health.runtime_installed === false) {
      runtimeProblem = health.runtime_problem || 'The MediaPipe web runtime is not installed on the server.';
      showFatal(runtimeProblem);
    }
  })
  .catch(() => { /* the server is unreachable: main.js reports its own failures */ });
