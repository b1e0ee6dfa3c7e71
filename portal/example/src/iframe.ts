import './host.css';
import { fetchPortalSession } from './session';

// The token rides in the fragment: the browser never sends it to Keyward's
// access log, and the portal page removes it from its address bar at once.
const frame = document.getElementById('keyward-portal') as HTMLIFrameElement;
fetchPortalSession().then(({ token, baseUrl }) => {
  frame.src = `${baseUrl}/portal/#token=${encodeURIComponent(token)}`;
});
