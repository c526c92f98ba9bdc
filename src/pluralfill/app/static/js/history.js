// Undo and redo. An entry is {undo(), redo(), bytes}: a change knows how to take itself back. Entries of
// every kind share one stack (strokes on either layer, a cleared layer, a new round of "use as input"), so
// Ctrl+Z walks back through all of them in order. The oldest go once the pixels they hold pass `maxBytes`.

export class History {
  constructor(maxBytes = 512 * 2 ** 20) {
    this.done = [];
    this.undone = [];
    this.maxBytes = maxBytes;
  }

  push(entry) {
    this.done.push(entry);
    this.undone = [];
    while (this.done.length > 1 && this.bytes() > this.maxBytes) this.done.shift();
  }

  undo() {
    const entry = this.done.pop();
    if (!entry) return false;
    entry.undo();
    this.undone.push(entry);
    return true;
  }

  redo() {
    const entry = this.undone.pop();
    if (!entry) return false;
    entry.redo();
    this.done.push(entry);
    return true;
  }

  bytes() {
    return [...this.done, ...this.undone].reduce((sum, e) => sum + (e.bytes || 0), 0);
  }

  clear() {
    this.done = [];
    this.undone = [];
  }
}
