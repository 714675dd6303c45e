import { Component, type ErrorInfo, type ReactNode } from "react";

interface Props {
  children: ReactNode;
}

interface State {
  error: Error | null;
}

/** Keeps the shell (and the navigation) usable when one page fails to render. */
export class ErrorBoundary extends Component<Props, State> {
  override state: State = { error: null };

  static getDerivedStateFromError(error: Error): State {
    return { error };
  }

  override componentDidCatch(error: Error, info: ErrorInfo): void {
    console.error("page failed to render", error, info.componentStack);
  }

  override render() {
    if (this.state.error) {
      return (
        <div className="page">
          <div className="banner banner-error" role="alert">
            <span>
              This page failed to render: {this.state.error.message}. The server may speak a
              different API version than this WebUI.
            </span>
          </div>
          <div>
            <button type="button" className="btn" onClick={() => this.setState({ error: null })}>
              Try again
            </button>
          </div>
        </div>
      );
    }
    return this.props.children;
  }
}
