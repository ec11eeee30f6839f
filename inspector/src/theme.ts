// Dark mode: follows prefers-color-scheme; the toggle stores an explicit choice in
// localStorage (choosing what the system already says goes back to following the system).
type Theme = "light" | "dark";
const KEY = "daggr-theme";
const media = matchMedia("(prefers-color-scheme: dark)");
const system = (): Theme => (media.matches ? "dark" : "light");

let choice: Theme | null = null;
try {
  const v = localStorage.getItem(KEY);
  choice = v === "light" || v === "dark" ? v : null;
} catch {
  /* storage disabled */
}

export const currentTheme = (): Theme => choice || system();

export function initTheme(button: HTMLElement, changed: () => void): void {
  const apply = () => {
    const theme = currentTheme();
    document.documentElement.dataset.theme = theme;
    button.setAttribute("aria-pressed", String(theme === "dark"));
    button.title = `${theme === "dark" ? "Dark" : "Light"} theme${choice ? "" : " (following the system)"}: click to switch`;
    changed();
  };
  button.addEventListener("click", () => {
    const next: Theme = currentTheme() === "dark" ? "light" : "dark";
    choice = next === system() ? null : next;
    try {
      if (choice) localStorage.setItem(KEY, choice);
      else localStorage.removeItem(KEY);
    } catch {
      /* the choice lasts for this page only */
    }
    apply();
  });
  media.addEventListener("change", apply);
  apply();
}
