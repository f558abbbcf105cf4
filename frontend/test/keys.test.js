import test from "node:test";
import assert from "node:assert/strict";

import { KEYMAP, formatBinding, helpRows, isTypingTarget, resolveKey } from "../editor/keys.js";

test("plain letters choose tools, case-insensitively without Shift", () => {
  assert.deepEqual(resolveKey({ key: "b" }), { action: "tool:brush", arg: null });
  assert.deepEqual(resolveKey({ key: "e" }), { action: "tool:eraser", arg: null });
  assert.equal(resolveKey({ key: "f" }).action, "tool:fill");
  assert.equal(resolveKey({ key: "B", shiftKey: true }), null, "Shift+B is not bound");
  assert.equal(resolveKey({ key: "B", shiftKey: false }).action, "tool:brush", "Caps Lock still works");
});

test("undo and redo with Ctrl or Cmd", () => {
  assert.equal(resolveKey({ key: "z", ctrlKey: true }).action, "edit:undo");
  assert.equal(resolveKey({ key: "z", metaKey: true }).action, "edit:undo");
  assert.equal(resolveKey({ key: "Z", ctrlKey: true, shiftKey: true }).action, "edit:redo");
  assert.equal(resolveKey({ key: "y", ctrlKey: true }).action, "edit:redo");
  assert.equal(resolveKey({ key: "b", ctrlKey: true }), null, "browser shortcuts pass through");
});

test("symbols, digits and special keys", () => {
  assert.equal(resolveKey({ key: "?", shiftKey: true }).action, "help");
  assert.deepEqual(resolveKey({ key: "3" }), { action: "view:channel", arg: 2 });
  assert.equal(resolveKey({ key: "Delete" }).action, "label:delete");
  assert.equal(resolveKey({ key: "Backspace" }).action, "label:delete");
  assert.equal(resolveKey({ key: "]" }).action, "brush:larger");
  assert.equal(resolveKey({ key: "+", shiftKey: true }).action, "view:zoomIn");
});

test("no action while typing in a field, with Alt, or for unbound keys", () => {
  assert.equal(resolveKey({ key: "b", target: { tagName: "input" } }), null);
  assert.equal(resolveKey({ key: "b", target: { tagName: "DIV", isContentEditable: true } }), null);
  assert.equal(resolveKey({ key: "b", target: { tagName: "CANVAS" } }).action, "tool:brush");
  assert.equal(resolveKey({ key: "b", altKey: true }), null);
  assert.equal(resolveKey({ key: "F5" }), null);
  assert.equal(resolveKey(null), null);
});

test("a checkbox, slider or colour well with the focus keeps the shortcuts; text fields take the keys", () => {
  for (const type of ["checkbox", "radio", "range", "color", "button"]) {
    const target = { tagName: "INPUT", type };
    assert.equal(isTypingTarget(target), false, type);
    assert.equal(resolveKey({ key: "e", target }).action, "tool:eraser", type);
    assert.deepEqual(resolveKey({ key: "3", target }), { action: "view:channel", arg: 2 }, type);
  }
  for (const target of [{ tagName: "INPUT" }, { tagName: "INPUT", type: "text" }, { tagName: "INPUT", type: "number" },
    { tagName: "TEXTAREA" }, { tagName: "SELECT" }, { tagName: "P", isContentEditable: true }]) {
    assert.equal(isTypingTarget(target), true, JSON.stringify(target));
    assert.equal(resolveKey({ key: "e", target }), null);
  }
  assert.equal(resolveKey({ key: "ArrowLeft", target: { tagName: "INPUT", type: "range" } }), null,
    "the arrows stay with a slider reached by keyboard");
});

test("every key combination is bound at most once and every binding is described", () => {
  const combos = new Set();
  for (const b of KEYMAP) {
    const combo = `${b.key}|${Boolean(b.mod)}|${Boolean(b.shift)}`;
    assert.ok(!combos.has(combo), `duplicate binding ${combo}`);
    combos.add(combo);
    assert.ok(b.description.length > 0 && b.group.length > 0);
    assert.deepEqual(resolveKey({ key: b.key, ctrlKey: Boolean(b.mod), shiftKey: Boolean(b.shift) }).action, b.action);
  }
});

test("help rows merge alternative keys and read well", () => {
  assert.equal(formatBinding({ key: "z", mod: true, shift: true }), "Ctrl+Shift+Z");
  assert.equal(formatBinding({ key: "z", mod: true }, { mac: true }), "Cmd+Z");
  const rows = helpRows();
  const del = rows.find((r) => r.description === "Delete the selected cell");
  assert.equal(del.keys, "Del / Backspace");
  const channel = rows.filter((r) => r.description.startsWith("Channel"));
  assert.equal(channel.length, 1);
  assert.equal(channel[0].keys, "1-9");
  assert.equal(rows.filter((r) => r.description === "Redo")[0].keys, "Ctrl+Shift+Z / Ctrl+Y");
});
