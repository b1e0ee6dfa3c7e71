import { createContext, useContext } from 'react';

export const ToastContext = createContext<(text: string) => void>(() => {});

/** Shows a short confirmation ("Key revoked") for a few seconds. */
export function useToast(): (text: string) => void {
  return useContext(ToastContext);
}
