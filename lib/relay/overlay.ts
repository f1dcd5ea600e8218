/**
 * Where each relaying listener sits (docs/PROTOCOL.md §9.3): pure placement logic, no I/O.
 *
 * The server is node 0, the root. Every node (the server included) serves at most `fanout`
 * children: fanout 1 is a chain (each newcomer is served by the last listener, as in a linked
 * list), fanout K > 1 a tree filled breadth first, so the depth stays ⌈log_K N⌉. Every node
 * has a parent and a precomputed backup parent, its grandparent (the server for the server's
 * own children): the node it moves to when its parent leaves or crashes, so the backup is
 * never the node itself or one of its descendants. Leaving (graceful) and crashing (reported)
 * both hand the node's children to its parent; a parent that then has more than `fanout`
 * children sends the newest extra ones to the shallowest free place outside their own subtree.
 *
 * @module
 */

/** Id of the root (the server). */
export const SERVER = 0;

/** A node's place in the overlay. */
export interface Placement {
  /** Node that streams to it ({@linkcode SERVER} for the server). */
  parent: number;
  /** Node it switches to when the parent goes silent. */
  backup: number;
}

interface Node {
  id: number;
  label: string;
  parent: number;
  children: number[];
  /** Join order (ties in placement go to the oldest). */
  order: number;
}

/** The overlay tree of one relaying radio. */
export class Overlay {
  /** Most children per node. */
  readonly fanout: number;
  readonly #nodes = new Map<number, Node>();
  #order = 0;

  /** @throws {RangeError} for a fanout that is not an integer ≥ 1 */
  constructor(fanout: number) {
    if (!Number.isInteger(fanout) || fanout < 1) {
      throw new RangeError(`Invalid relay fanout ${fanout}: an integer ≥ 1 is needed`);
    }
    this.fanout = fanout;
    this.#nodes.set(SERVER, { id: SERVER, label: "server", parent: -1, children: [], order: 0 });
  }

  /** Number of listeners in the overlay (the server not counted). */
  get size(): number {
    return this.#nodes.size - 1;
  }

  /** Whether `id` is in the overlay. */
  has(id: number): boolean {
    return id !== SERVER && this.#nodes.has(id);
  }

  /** Ids of the listeners, in join order. */
  ids(): number[] {
    return [...this.#nodes.values()].filter((n) => n.id !== SERVER).sort((a, b) =>
      a.order - b.order
    ).map((n) => n.id);
  }

  /**
   * Places a new listener under the shallowest node with room (oldest first).
   * @throws {RangeError} when `id` is 0 or already placed
   */
  join(id: number, label: string): Placement {
    if (id === SERVER || this.#nodes.has(id)) throw new RangeError(`Node ${id} is already placed`);
    const node: Node = { id, label, parent: -1, children: [], order: ++this.#order };
    this.#nodes.set(id, node);
    this.#attach(node, this.#freeSpot(new Set([id])) ?? SERVER);
    return this.placement(id)!;
  }

  /** Removes a node that left gracefully; its children go to its parent. */
  leave(id: number): void {
    this.#remove(id);
  }

  /** Removes a node reported silent or tampering; its children go to its parent (their backup). */
  crash(id: number): void {
    this.#remove(id);
  }

  /** Parent and backup of `id`, or undefined when it is not placed. */
  placement(id: number): Placement | undefined {
    const node = this.#nodes.get(id);
    if (!node || id === SERVER) return undefined;
    const parent = node.parent;
    const grand = parent === SERVER ? SERVER : this.#nodes.get(parent)!.parent;
    return { parent, backup: grand };
  }

  /** Children of `id` (the server's: {@linkcode SERVER}), oldest first. */
  children(id: number): number[] {
    return [...(this.#nodes.get(id)?.children ?? [])];
  }

  /** Listeners that switch to `id` if their parent fails (`id` is their grandparent). */
  standby(id: number): number[] {
    return this.children(id).flatMap((c) => this.children(c));
  }

  /** Hops from the server: 1 for the server's children. */
  depth(id: number): number {
    let d = 0;
    for (let n = this.#nodes.get(id); n && n.id !== SERVER; n = this.#nodes.get(n.parent)) d++;
    return d;
  }

  /** Whether `id` is `ancestor` or lies below it. */
  isWithin(id: number, ancestor: number): boolean {
    for (let n = this.#nodes.get(id); n; n = this.#nodes.get(n.parent)) {
      if (n.id === ancestor) return true;
    }
    return false;
  }

  /** The overlay as text, one node a line: who relays to whom (and each node's backup). */
  format(): string[] {
    const lines = [`server (fanout ${this.fanout}, ${this.size} relaying listeners)`];
    const walk = (id: number, indent: string) => {
      const kids = this.#nodes.get(id)!.children;
      kids.forEach((c, i) => {
        const last = i === kids.length - 1;
        const n = this.#nodes.get(c)!;
        const p = this.placement(c)!;
        lines.push(
          `${indent}${last ? "└─" : "├─"} #${c} ${n.label} (backup ${
            p.backup === SERVER ? "server" : `#${p.backup}`
          })`,
        );
        walk(c, indent + (last ? "   " : "│  "));
      });
    };
    walk(SERVER, "");
    return lines;
  }

  #remove(id: number): void {
    const node = this.#nodes.get(id);
    if (!node || id === SERVER) return;
    const parent = this.#nodes.get(node.parent)!;
    parent.children = parent.children.filter((c) => c !== id);
    this.#nodes.delete(id);
    for (const c of node.children) this.#attach(this.#nodes.get(c)!, parent.id);
    // Too many children now: the newest extras move to free places outside their subtree.
    while (parent.children.length > this.fanout) {
      const extra = this.#nodes.get(parent.children[parent.children.length - 1]!)!;
      const spot = this.#freeSpot(this.#subtree(extra.id));
      if (spot === undefined) break;
      parent.children.pop();
      this.#attach(extra, spot);
    }
  }

  #attach(node: Node, parentId: number): void {
    node.parent = parentId;
    this.#nodes.get(parentId)!.children.push(node.id);
  }

  #subtree(id: number): Set<number> {
    const out = new Set<number>();
    const stack = [id];
    while (stack.length) {
      const n = stack.pop()!;
      out.add(n);
      stack.push(...this.#nodes.get(n)!.children);
    }
    return out;
  }

  /** The shallowest node with room not in `exclude` (breadth first, oldest first). */
  #freeSpot(exclude: Set<number>): number | undefined {
    const queue = [SERVER];
    for (let i = 0; i < queue.length; i++) {
      const n = this.#nodes.get(queue[i]!)!;
      if (exclude.has(n.id)) continue;
      if (n.children.length < this.fanout) return n.id;
      const kids = n.children.map((c) => this.#nodes.get(c)!).sort((a, b) => a.order - b.order);
      queue.push(...kids.map((k) => k.id));
    }
    return undefined;
  }
}
