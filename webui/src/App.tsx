import { BrowserRouter, Link, Route, Routes } from "react-router-dom";
import { Layout } from "./components/Layout";
import { BatchesPage } from "./pages/BatchesPage";
import { ClusterPage } from "./pages/Cluster";
import { KeysPage } from "./pages/KeysPage";
import { LogsPage } from "./pages/LogsPage";
import { ModelsPage } from "./pages/ModelsPage";
import { OverviewPage } from "./pages/OverviewPage";
import { UsagePage } from "./pages/UsagePage";
import { LiveDataProvider } from "./state/LiveDataProvider";

export function AppRoutes() {
  return (
    <Routes>
      <Route element={<Layout />}>
        <Route index element={<OverviewPage />} />
        <Route path="models" element={<ModelsPage />} />
        <Route path="models/:name" element={<ModelsPage />} />
        <Route path="logs" element={<LogsPage />} />
        <Route path="logs/:name" element={<LogsPage />} />
        <Route path="usage" element={<UsagePage />} />
        <Route path="batches" element={<BatchesPage />} />
        <Route path="keys" element={<KeysPage />} />
        <Route path="cluster" element={<ClusterPage />} />
        <Route
          path="*"
          element={
            <div className="page">
              <p>
                Page not found. <Link to="/">Back to the overview</Link>
              </p>
            </div>
          }
        />
      </Route>
    </Routes>
  );
}

/** The manager (and `npm run dev`) fall back to index.html, so every page has a real URL. */
export function App() {
  return (
    <LiveDataProvider>
      <BrowserRouter>
        <AppRoutes />
      </BrowserRouter>
    </LiveDataProvider>
  );
}
