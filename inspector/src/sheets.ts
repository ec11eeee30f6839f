// Sheet switcher: a <select> of the sheets, and create / rename / fork / delete.
import { api } from "./api";
import { el, guard, toast } from "./dom";
import type { SheetInfo, SheetList } from "./types";

export class Sheets {
  list: SheetInfo[] = [];
  defaultName = "default";

  constructor(
    private readonly select: HTMLSelectElement,
    private readonly current: () => string,
    /** Shows another sheet (and reloads this list). */
    private readonly switchTo: (name: string) => Promise<void>,
  ) {
    select.addEventListener("change", guard(() => this.switchTo(select.value)));
    const on = (id: string, fn: () => Promise<void>) => document.getElementById(id)?.addEventListener("click", guard(fn));
    on("sheet-new", async () => {
      const name = prompt("New sheet name", this.freeName("sheet"))?.trim();
      if (!name) return;
      await api.createSheet(name);
      await this.switchTo(name);
    });
    on("sheet-fork", async () => {
      const to = prompt(`Fork sheet "${this.current()}" as`, this.freeName(`${this.current()}-copy`))?.trim();
      if (!to) return;
      await api.forkSheet(this.current(), to);
      await this.switchTo(to);
    });
    on("sheet-rename", async () => {
      const from = this.current();
      const to = prompt(`Rename sheet "${from}" to`, from)?.trim();
      if (!to || to === from) return;
      await api.renameSheet(from, to);
      await this.switchTo(to);
    });
    on("sheet-delete", async () => {
      const name = this.current();
      if (!confirm(`Delete sheet "${name}" with its inputs and result history?`)) return;
      await api.deleteSheet(name);
      await this.reload();
      toast(`Deleted sheet "${name}"`, "info");
      await this.switchTo(this.has(this.defaultName) ? this.defaultName : this.list[0]?.name);
    });
  }

  has(name: string | null | undefined): boolean {
    return !!name && this.list.some((s) => s.name === name);
  }

  private freeName(base: string): string {
    if (!this.has(base)) return base;
    for (let i = 2; ; i++) if (!this.has(`${base}-${i}`)) return `${base}-${i}`;
  }

  async reload(): Promise<void> {
    this.show(await api.sheets());
  }

  /** Shows a list fetched by the caller. */
  show(res: SheetList): void {
    this.list = res.sheets;
    this.defaultName = res.default;
    this.render();
  }

  render(): void {
    const cur = this.current();
    this.select.replaceChildren(...this.list.map((s) => el("option", { value: s.name, text: s.name })));
    if (this.has(cur)) this.select.value = cur;
    const del = document.getElementById("sheet-delete") as HTMLButtonElement | null;
    if (del) del.disabled = this.list.length <= 1;
  }
}
