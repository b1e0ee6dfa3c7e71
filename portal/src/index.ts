export { KeywardKeys, type KeywardKeysProps } from './KeywardKeys.js';
