import { render } from "preact";
import { App } from "./app";
import { installLinkHandler } from "./router";
import { takeTokenFromFragment } from "./session";
import "./style.css";

// Before anything renders: a #token= link signs in and leaves no token in
// the address bar or history.
takeTokenFromFragment();
installLinkHandler();
render(<App />, document.getElementById("app")!);
