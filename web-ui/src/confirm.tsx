// A confirmation in a modal <dialog>: focus moves into it (onto the safe
// choice for destructive actions), Escape and "Cancel" close it unanswered.
import type { ComponentChildren } from "preact";
import { useEffect, useRef } from "preact/hooks";

export interface ConfirmProps {
  title: string;
  children?: ComponentChildren;
  confirmLabel?: string;
  // Focus "Cancel" first, and show "Confirm" as dangerous.
  destructive?: boolean;
  onConfirm: () => void;
  onCancel: () => void;
}

export function ConfirmDialog({ title, children, destructive, onConfirm, onCancel }: ConfirmProps) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    const opener = document.activeElement as HTMLElement | null;
    dialog.showModal();
    return () => {
      if (dialog.open) dialog.close();
      opener?.focus?.();
    };
  }, []);
  return (
    <dialog
      ref={ref}
      aria-labelledby="confirm-title"
      onCancel={(e) => {
        e.preventDefault();
        onCancel();
      }}
    >
      <h2 id="confirm-title">{title}</h2>
      {children}
      <div class="actions">
        <button type="button" onClick={onCancel} autoFocus={destructive}>
          Cancel
        </button>
        <button type="button" class={destructive ? "danger" : "primary"} onClick={onConfirm} autoFocus={!destructive}>
          Confirm
        </button>
      </div>
    </dialog>
  );
}
